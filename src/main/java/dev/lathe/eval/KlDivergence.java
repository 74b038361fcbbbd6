package dev.lathe.eval;

import dev.lathe.model.LlamaModel;

import java.util.Arrays;

/**
 * KL divergence of a model from a reference model, in one pass over both: the chunks and scored positions
 * of {@link Perplexity} (llama-perplexity's convention); at every scored position the full-vocabulary
 * KL(ref || model) = sum_i p_ref(i) (log p_ref(i) - log p_model(i)) in double precision; top-1 agreement
 * ("same top p" in llama-perplexity) and both perplexities.
 */
public final class KlDivergence {
    private KlDivergence() {}

    /**
     * @param perToken KL(ref || model) at every scored position, in evaluation order
     */
    public record Result(double mean, double median, double p99, double max, double sameTop, double pplRef,
                         double pplModel, long count, double[] perToken) {
        /** PPL(model) / PPL(ref). */
        public double pplRatio() {
            return pplModel / pplRef;
        }
    }

    public static Result compute(LlamaModel ref, LlamaModel model, int[] tokens, Perplexity.Options o) {
        return compute(ref, model, tokens, o, Progress.NONE);
    }

    public static Result compute(LlamaModel ref, LlamaModel model, int[] tokens, Perplexity.Options o, Progress progress) {
        if (ref.vocabSize() != model.vocabSize()) {
            throw new IllegalArgumentException("vocabulary sizes differ: reference " + ref.vocabSize() + ", model " + model.vocabSize());
        }
        return run(ref, null, model, tokens, o, progress);
    }

    /**
     * The reference model's log-probabilities at every scored position, computed once, for comparing many
     * models with the same reference ({@link #compute(Reference, LlamaModel)}) at the cost of one forward pass
     * each. Held as floats: positions x vocabulary x 4 bytes.
     */
    public record Reference(int[] tokens, Perplexity.Options options, int vocab, float[] logProbs, int[] top, double nll) {
        public int positions() {
            return top.length;
        }
    }

    /** Bytes a {@link Reference} of {@code tokens} under {@code o} would hold. */
    public static long referenceBytes(int vocab, int nTokens, Perplexity.Options o) {
        return 4L * vocab * Perplexity.chunks(nTokens, o) * (o.nCtx() - 1 - o.first());
    }

    public static Reference reference(LlamaModel ref, int[] tokens, Perplexity.Options o) {
        int vocab = ref.vocabSize();
        long bytes = referenceBytes(vocab, tokens.length, o);
        if (bytes > Integer.MAX_VALUE - 64) throw new IllegalArgumentException("a reference of " + bytes + " bytes is too large; use fewer chunks");
        int chunks = Perplexity.chunks(tokens.length, o);
        if (chunks < 1) throw new IllegalArgumentException("need at least " + o.nCtx() + " tokens, got " + tokens.length);
        int per = o.nCtx() - 1 - o.first();
        float[] lp = new float[chunks * per * vocab];
        int[] top = new int[chunks * per];
        double[] nll = {0};
        double[] tmp = new double[vocab];
        int[] k = {0};
        forEachScored(ref, tokens, o, (logits, off, target) -> {
            int i = k[0]++;
            top[i] = logSoftmax(logits, off, vocab, tmp);
            nll[0] -= tmp[target];
            for (int j = 0; j < vocab; j++) lp[i * vocab + j] = (float) tmp[j];
        }, Progress.NONE);
        return new Reference(tokens, o, vocab, lp, top, nll[0]);
    }

    /** KL(reference || model) with a precomputed reference: one forward pass of {@code model}. */
    public static Result compute(Reference ref, LlamaModel model) {
        if (ref.vocab() != model.vocabSize()) {
            throw new IllegalArgumentException("vocabulary sizes differ: reference " + ref.vocab() + ", model " + model.vocabSize());
        }
        return run(null, ref, model, ref.tokens(), ref.options(), Progress.NONE);
    }

    private interface Scored {
        void accept(float[] logits, int off, int target);
    }

    /** Runs {@code model} over the chunks of {@link Perplexity}, handing each scored position's logits on. */
    private static void forEachScored(LlamaModel model, int[] tokens, Perplexity.Options o, Scored sink, Progress progress) {
        int nCtx = o.nCtx();
        int chunks = Perplexity.chunks(tokens.length, o);
        if (chunks < 1) throw new IllegalArgumentException("need at least " + nCtx + " tokens, got " + tokens.length);
        int first = o.first();
        int vocab = model.vocabSize();
        int batch = Math.min(nCtx, Perplexity.BATCH);
        LlamaModel.Session ms = model.newSession(nCtx, LlamaModel.KvType.F32, batch);
        int[] chunk = new int[nCtx];
        long t0 = System.nanoTime();
        for (int c = 0; c < chunks; c++) {
            System.arraycopy(tokens, c * nCtx, chunk, 0, nCtx);
            if (o.bos() >= 0) chunk[0] = o.bos();
            ms.reset();
            if (first > 0) model.forward(ms, chunk, 0, first, false);
            for (int p = first; p < nCtx - 1; ) {
                int nb = Math.min(batch, nCtx - 1 - p);
                float[] lm = model.forward(ms, chunk, p, nb, true);
                for (int i = 0; i < nb; i++) sink.accept(lm, i * vocab, chunk[p + i + 1]);
                p += nb;
            }
            double elapsed = (System.nanoTime() - t0) / 1e9;
            progress.update(c + 1, chunks, Double.NaN, elapsed / (c + 1) * (chunks - c - 1));
        }
    }

    /** The comparison, with the reference either run alongside ({@code refModel}) or precomputed ({@code cached}). */
    private static Result run(LlamaModel refModel, Reference cached, LlamaModel model, int[] tokens, Perplexity.Options o, Progress progress) {
        int nCtx = o.nCtx();
        int chunks = Perplexity.chunks(tokens.length, o);
        if (chunks < 1) throw new IllegalArgumentException("need at least " + nCtx + " tokens, got " + tokens.length);
        int first = o.first();
        int vocab = model.vocabSize();
        int per = nCtx - 1 - first;
        int batch = Math.min(nCtx, Perplexity.BATCH);
        LlamaModel.Session rs = refModel == null ? null : refModel.newSession(nCtx, LlamaModel.KvType.F32, batch);
        LlamaModel.Session ms = model.newSession(nCtx, LlamaModel.KvType.F32, batch);
        int[] chunk = new int[nCtx];
        double[] kl = new double[chunks * per];
        double[] lpRef = new double[vocab], lpModel = new double[vocab];
        double[] acc = new double[3]; // nll ref, nll model, sum of KL
        long[] same = {0};
        int[] k = {0};
        long t0 = System.nanoTime();
        for (int c = 0; c < chunks; c++) {
            System.arraycopy(tokens, c * nCtx, chunk, 0, nCtx);
            if (o.bos() >= 0) chunk[0] = o.bos();
            // reference logits of the scored positions, then the model's, compared position by position
            if (rs != null) rs.reset();
            ms.reset();
            if (first > 0) {
                if (rs != null) refModel.forward(rs, chunk, 0, first, false);
                model.forward(ms, chunk, 0, first, false);
            }
            for (int p = first; p < nCtx - 1; ) {
                int nb = Math.min(batch, nCtx - 1 - p);
                float[] lr = rs == null ? null : refModel.forward(rs, chunk, p, nb, true);
                float[] lm = model.forward(ms, chunk, p, nb, true);
                for (int i = 0; i < nb; i++) {
                    int off = i * vocab;
                    int target = chunk[p + i + 1];
                    int topRef;
                    if (cached == null) {
                        topRef = logSoftmax(lr, off, vocab, lpRef);
                    } else {
                        int pos = k[0];
                        topRef = cached.top()[pos];
                        for (int j = 0; j < vocab; j++) lpRef[j] = cached.logProbs()[pos * vocab + j];
                    }
                    int topModel = logSoftmax(lm, off, vocab, lpModel);
                    acc[0] -= lpRef[target];
                    acc[1] -= lpModel[target];
                    double d = 0;
                    for (int j = 0; j < vocab; j++) {
                        double pr = Math.exp(lpRef[j]);
                        if (pr > 0) d += pr * (lpRef[j] - lpModel[j]);
                    }
                    d = Math.max(0, d);
                    kl[k[0]++] = d;
                    acc[2] += d;
                    if (topRef == topModel) same[0]++;
                }
                p += nb;
            }
            double elapsed = (System.nanoTime() - t0) / 1e9;
            progress.update(c + 1, chunks, acc[2] / k[0], elapsed / (c + 1) * (chunks - c - 1));
        }
        double[] sorted = kl.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        double median = n % 2 == 0 ? 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]) : sorted[n / 2];
        return new Result(acc[2] / n, median, percentile(sorted, 0.99), sorted[n - 1], (double) same[0] / n,
                Math.exp(acc[0] / n), Math.exp(acc[1] / n), n, kl);
    }

    /** Linear-interpolated percentile of sorted values (fraction in [0, 1]). */
    static double percentile(double[] sorted, double fraction) {
        double pos = fraction * (sorted.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = Math.min(sorted.length - 1, lo + 1);
        return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
    }

    /** Log-softmax in double into {@code out}; returns the argmax (first on ties). */
    static int logSoftmax(float[] logits, int off, int n, double[] out) {
        int arg = 0;
        float max = logits[off];
        for (int i = 1; i < n; i++) {
            if (logits[off + i] > max) {
                max = logits[off + i];
                arg = i;
            }
        }
        double sum = 0;
        for (int i = 0; i < n; i++) sum += Math.exp((double) logits[off + i] - max);
        double lse = Math.log(sum);
        for (int i = 0; i < n; i++) out[i] = (double) logits[off + i] - max - lse;
        return arg;
    }
}
