package dev.lathe.eval;

import dev.lathe.model.LlamaModel;

/**
 * Perplexity in llama-perplexity's convention (default mode): the token stream (with its leading BOS) is cut
 * into {@code n_ctx}-token chunks (the trailing partial chunk is dropped); each chunk gets its first token
 * replaced by BOS (when the model adds one) and is evaluated alone from position 0 with a fresh cache; the
 * logits at positions {@code first .. n_ctx-2} score tokens {@code first+1 .. n_ctx-1}, with
 * {@code first = n_ctx/2} by default; NLL via log-softmax with float max-subtraction and a double sum of
 * exponentials; PPL = exp(total NLL / scored tokens).
 */
public final class Perplexity {
    private Perplexity() {}

    /**
     * @param nCtx       chunk length
     * @param bos        the BOS id put at the start of every chunk, or -1 to leave chunks as they are
     * @param firstScored first scored logit position in a chunk; -1 means n_ctx/2 (llama-perplexity)
     * @param maxChunks  evaluate at most this many chunks; -1 means all
     */
    public record Options(int nCtx, int bos, int firstScored, int maxChunks) {
        public Options {
            if (nCtx < 2) throw new IllegalArgumentException("n_ctx must be >= 2, got " + nCtx);
            if (firstScored < -1 || firstScored > nCtx - 2) throw new IllegalArgumentException("first scored position " + firstScored + " outside [0, " + (nCtx - 2) + "]");
        }

        public static Options llamaCpp(int nCtx, int bos) {
            return new Options(nCtx, bos, -1, -1);
        }

        /**
         * Scores every position of each chunk (logits 0 .. n_ctx-2), so all tokens but the first of each chunk
         * count: the setting for bits per byte over (nearly) the whole text.
         */
        public static Options scoreAll(int nCtx, int bos) {
            return new Options(nCtx, bos, 0, -1);
        }

        public int first() {
            return firstScored < 0 ? nCtx / 2 : firstScored;
        }
    }

    /**
     * @param chunkNll per-chunk sum of NLL (nats)
     */
    public record Result(double ppl, double totalNll, long scoredTokens, double[] chunkNll, int nCtx) {
        public double meanNll() {
            return totalNll / scoredTokens;
        }

        /** Bits per byte: total NLL / ln 2 / {@code utf8Bytes}. */
        public double bitsPerByte(long utf8Bytes) {
            if (utf8Bytes <= 0) throw new IllegalArgumentException("byte count must be positive");
            return totalNll / Math.log(2) / utf8Bytes;
        }

        /** Tokens scored per chunk. */
        public long tokensPerChunk() {
            return scoredTokens / chunkNll.length;
        }

        /** The running perplexity after {@code chunks} chunks (llama-perplexity's {@code [k]ppl} values). */
        public double runningPpl(int chunks) {
            if (chunks < 1 || chunks > chunkNll.length) throw new IllegalArgumentException("chunk count " + chunks + " outside [1, " + chunkNll.length + "]");
            double s = 0;
            for (int i = 0; i < chunks; i++) s += chunkNll[i];
            return Math.exp(s / (chunks * tokensPerChunk()));
        }
    }

    /** Number of chunks llama-perplexity evaluates for {@code nTokens} tokens. */
    public static int chunks(int nTokens, Options o) {
        int n = nTokens / o.nCtx();
        return o.maxChunks() >= 0 ? Math.min(n, o.maxChunks()) : n;
    }

    public static Result compute(LlamaModel model, int[] tokens, Options o) {
        return compute(model, tokens, o, Progress.NONE);
    }

    public static Result compute(LlamaModel model, int[] tokens, Options o, Progress progress) {
        int nCtx = o.nCtx();
        int chunks = chunks(tokens.length, o);
        if (chunks < 1) {
            throw new IllegalArgumentException("need at least " + nCtx + " tokens for one chunk of n_ctx " + nCtx + ", got " + tokens.length);
        }
        int first = o.first();
        int vocab = model.vocabSize();
        LlamaModel.Session s = model.newSession(nCtx, LlamaModel.KvType.F32, Math.min(nCtx, BATCH));
        int[] chunk = new int[nCtx];
        double[] chunkNll = new double[chunks];
        double total = 0;
        long count = 0;
        long t0 = System.nanoTime();
        for (int c = 0; c < chunks; c++) {
            System.arraycopy(tokens, c * nCtx, chunk, 0, nCtx);
            if (o.bos() >= 0) chunk[0] = o.bos();
            double[] sum = {0};
            evalChunk(model, s, chunk, first, (pos, logits, off) -> sum[0] += nll(logits, off, vocab, chunk[pos + 1]));
            chunkNll[c] = sum[0];
            total += sum[0];
            count += nCtx - 1 - first;
            double elapsed = (System.nanoTime() - t0) / 1e9;
            progress.update(c + 1, chunks, Math.exp(total / count), elapsed / (c + 1) * (chunks - c - 1));
        }
        return new Result(Math.exp(total / count), total, count, chunkNll, nCtx);
    }

    /** Most tokens whose logits are materialised at once (bounds memory for large vocabularies). */
    static final int BATCH = 512;

    /** Receives the logits of one scored position: {@code logits[off .. off+vocab)}. */
    interface PositionConsumer {
        void accept(int position, float[] logits, int off);
    }

    /**
     * Evaluates one chunk from position 0 in a reset session: positions before {@code first} without
     * output logits, then the rest in sub-batches with logits, handing positions first .. n-2 to
     * {@code sink}. (Batch boundaries do not change the results: every kernel sums in the same order.)
     */
    static void evalChunk(LlamaModel model, LlamaModel.Session s, int[] chunk, int first, PositionConsumer sink) {
        int n = chunk.length, vocab = model.vocabSize();
        s.reset();
        if (first > 0) model.forward(s, chunk, 0, first, false);
        for (int p = first; p < n - 1; ) {
            int k = Math.min(BATCH, n - 1 - p);
            float[] logits = model.forward(s, chunk, p, k, true);
            for (int i = 0; i < k; i++) sink.accept(p + i, logits, i * vocab);
            p += k;
        }
    }

    /** -log softmax(logits)[target] as llama-perplexity computes it (float max, double sum of expf). */
    public static double nll(float[] logits, int off, int n, int target) {
        float max = logits[off];
        for (int i = 1; i < n; i++) max = Math.max(max, logits[off + i]);
        double sum = 0;
        for (int i = 0; i < n; i++) sum += (float) Math.exp(logits[off + i] - max);
        return -((double) (logits[off + target] - max) - Math.log(sum));
    }
}
