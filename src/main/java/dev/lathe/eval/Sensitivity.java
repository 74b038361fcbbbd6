package dev.lathe.eval;

import dev.lathe.LatheException;
import dev.lathe.compress.Grid;
import dev.lathe.compress.QuantPlan;
import dev.lathe.compress.QuantizedWeight;
import dev.lathe.compress.WeightFormat;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.Parallel;
import dev.lathe.model.TensorMapSource;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Per-tensor quantization sensitivity: each quantizable weight is rounded to its format alone (round-to-nearest,
 * every other tensor as stored) and the model's output is compared with the unchanged model on a text: KL
 * divergence (mean, p99), top-1 agreement and perplexity ratio. The tensors that cost most are the ones a mix
 * should keep at more bits (what llama.cpp's Q4_K_M does by rule for attn_v, ffn_down and the head).
 * <p>
 * The quantized tensor is served to the engine in its stored form (a GGUF block type runs on the quantized
 * kernels, with llama.cpp's activation quantization), so each row measures what a mixed file would run.
 * Integer formats (compressed-tensors) are measured on their decoded weights.
 */
public final class Sensitivity {
    private Sensitivity() {}

    /** One tensor quantized alone. */
    public record Entry(String tensor, String format, long params, double bitsPerWeight, double kldMean, double kldP99,
                        double top1, double pplRatio) {
        /** The entry as JSON fields (the layout of {@code sensitivity --json} and of {@link AutoMix}'s files). */
        public Map<String, Object> toMap() {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("tensor", tensor);
            r.put("format", format);
            r.put("params", params);
            r.put("bpw", bitsPerWeight);
            r.put("kld_mean", kldMean);
            r.put("kld_p99", kldP99);
            r.put("top1", top1);
            r.put("ppl_ratio", pplRatio);
            return r;
        }
    }

    public interface Listener {
        /** After each tensor: how many are done of how many, the last entry, seconds left (estimate). */
        void done(int done, int total, Entry last, double etaSeconds);
    }

    /**
     * @param type      a llama.cpp type (Q4_K, Q2_K, ...; a mix name such as Q4_K_M means its base type; a row
     *                  length the type cannot take falls back as llama-quantize does) or a generic format (int4-g128)
     * @param tensors   the tensors to measure (null: every quantizable weight)
     * @param tokens    the text, tokenized with BOS as the model expects
     * @return entries sorted by decreasing mean KL divergence
     */
    public static List<Entry> run(WeightSource src, String type, List<String> tensors, int[] tokens, Perplexity.Options o,
                                  Parallel pool, Listener listener) {
        QuantPlan plan = QuantPlan.uniform(src, WeightFormat.parse(baseType(type)));
        List<String> names = tensors == null ? new ArrayList<>(plan.formats().keySet()) : tensors;
        List<Candidate> todo = new ArrayList<>();
        for (String n : names) {
            if (plan.format(n) == null) throw new LatheException(src.path(), "tensor " + n + " is not quantized by " + type + " (quantizable: " + plan.formats().keySet() + ")");
            todo.add(new Candidate(n, plan.format(n)));
        }
        List<Entry> out = measure(src, todo, tokens, o, pool, listener);
        out.sort(Comparator.comparingDouble(Entry::kldMean).reversed());
        return out;
    }

    /** A tensor and the format to measure it in. */
    public record Candidate(String tensor, WeightFormat format) {}

    /**
     * Measures each candidate alone against the unchanged model, in the given order. The reference model's
     * log-probabilities are computed once (one forward pass per candidate after that) when they fit in 1 GiB,
     * else the reference runs beside each candidate.
     */
    public static List<Entry> measure(WeightSource src, List<Candidate> candidates, int[] tokens, Perplexity.Options o,
                                      Parallel pool, Listener listener) {
        if (Perplexity.chunks(tokens.length, o) < 1) throw new LatheException("the text has " + tokens.length + " tokens; one chunk needs " + o.nCtx());
        LlamaModel ref = LlamaModel.load(src, pool);
        KlDivergence.Reference cached = null;
        if (!candidates.isEmpty() && KlDivergence.referenceBytes(ref.vocabSize(), tokens.length, o) <= (1L << 30)) {
            cached = KlDivergence.reference(ref, tokens, o);
        }
        List<Entry> out = new ArrayList<>();
        long t0 = System.nanoTime();
        for (int i = 0; i < candidates.size(); i++) {
            String name = candidates.get(i).tensor();
            WeightFormat f = candidates.get(i).format();
            if (!src.has(name)) throw new LatheException(src.path(), "no tensor " + name);
            Tensor t = src.tensor(name);
            try (Arena arena = Arena.ofShared()) {
                QuantizedWeight[] stored = new QuantizedWeight[1];
                Tensor q = quantize(t, f, pool, arena, stored);
                Map<String, Tensor> map = new LinkedHashMap<>();
                for (String n : src.tensorNames()) map.put(n, n.equals(name) ? q : src.tensor(n));
                WeightSource one = new TensorMapSource(src.path(), src.config(), map, null);
                LlamaModel m = LlamaModel.load(one, pool);
                KlDivergence.Result r = cached != null ? KlDivergence.compute(cached, m) : KlDivergence.compute(ref, m, tokens, o);
                long params = t.numElements();
                out.add(new Entry(name, f.toString(), params, 8.0 * stored[0].bytes() / params, r.mean(), r.p99(), r.sameTop(), r.pplRatio()));
            }
            double el = (System.nanoTime() - t0) / 1e9;
            listener.done(i + 1, candidates.size(), out.getLast(), el / (i + 1) * (candidates.size() - i - 1));
        }
        return out;
    }

    /** A llama.cpp mix name (Q4_K_M, Q3_K_S, Q2_K_S) stands for its base type (Q4_K, Q3_K, Q2_K). */
    static String baseType(String type) {
        String u = type.toUpperCase(java.util.Locale.ROOT);
        if (u.matches("Q[2-6]_K_[SML]")) return u.substring(0, 4);
        return type;
    }

    /** The tensor rounded to {@code f}: GGUF blocks as stored, integer formats decoded to F32. */
    static Tensor quantize(Tensor t, WeightFormat f, Parallel pool, Arena arena, QuantizedWeight[] stored) {
        int rows = (int) t.rows(), cols = (int) t.cols();
        float[] w = TensorOps.toFloats(t);
        for (float v : w) if (!Float.isFinite(v)) throw new LatheException(t.name() + ": NaN or infinite weight");
        Grid g = Grid.of(f, t.name(), rows, cols, null);
        float[] deq = g.roundToNearest(w, pool);
        QuantizedWeight qw = g.result();
        stored[0] = qw;
        if (qw instanceof QuantizedWeight.Gguf gg) {
            MemorySegment seg = arena.allocate(gg.data().length, 64);
            MemorySegment.copy(MemorySegment.ofArray(gg.data()), 0, seg, 0, gg.data().length);
            return new Tensor(t.name(), gg.type(), t.shape(), seg);
        }
        MemorySegment seg = arena.allocate(4L * deq.length, 64);
        MemorySegment.copy(MemorySegment.ofArray(deq), 0, seg, 0, 4L * deq.length);
        return new Tensor(t.name(), GgmlType.F32, t.shape(), seg);
    }
}
