package dev.lathe.prune;

import dev.lathe.LatheException;
import dev.lathe.io.Progress;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Prunes the matrix layers of a model in one shot, without calibration (magnitude) or with per-column input
 * norms supplied by a calibration pass (Wanda). By default the seven matrices of every block (q, k, v, o, gate,
 * up, down) are pruned; the token embedding and the output head stay dense unless asked, norms and biases
 * always do.
 */
public final class ModelPruner {
    private ModelPruner() {}

    public enum Method { MAGNITUDE, WANDA }

    /** Where the sparsity target applies: per output row, per matrix, or one threshold over all pruned matrices. */
    public enum Scope { ROW, LAYER, GLOBAL }

    /**
     * @param tensors     canonical names to prune; empty = every block matrix (plus head/embedding if asked)
     * @param columnNorms Wanda: canonical weight name -> L2 norm of each input column over calibration tokens
     */
    public record Options(Method method, Pattern pattern, Scope scope, boolean pruneEmbeddings, boolean pruneHead,
                          List<String> tensors, Map<String, float[]> columnNorms) {
        public Options {
            tensors = List.copyOf(tensors);
            columnNorms = columnNorms == null ? Map.of() : Map.copyOf(columnNorms);
            if (pattern.isNm() && scope == Scope.GLOBAL) throw new LatheException("an N:M pattern is per group of a row; it cannot be global");
            if (method == Method.WANDA && scope == Scope.GLOBAL) throw new LatheException("Wanda compares weights within a row or matrix, not globally");
        }

        public static Options magnitude(Pattern p) {
            return new Options(Method.MAGNITUDE, p, Scope.LAYER, false, false, List.of(), Map.of());
        }
    }

    /** Per-tensor outcome. */
    public record TensorStat(String name, long rows, long cols, long zeros) {
        public double sparsity() {
            return (double) zeros / (rows * cols);
        }
    }

    /** The pruned model: its dense weights as a {@link WeightSource} plus statistics. */
    public record Result(PrunedSource source, List<TensorStat> stats) {
        public long prunedParams() {
            return stats.stream().mapToLong(s -> s.rows() * s.cols()).sum();
        }

        public long zeros() {
            return stats.stream().mapToLong(TensorStat::zeros).sum();
        }

        /** Fraction of zeros over the pruned tensors. */
        public double sparsity() {
            long p = prunedParams();
            return p == 0 ? 0 : (double) zeros() / p;
        }
    }

    /** Canonical names of the matrices this run prunes, checked against the model. */
    public static List<String> targets(WeightSource src, Options o) {
        ModelConfig c = src.config();
        List<String> out = new ArrayList<>();
        if (o.tensors().isEmpty()) {
            for (int l = 0; l < c.nLayers(); l++) {
                for (String s : new String[]{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
                    out.add(TensorNames.layer(l, s + ".weight"));
                }
            }
            if (o.pruneHead() && src.has(TensorNames.OUTPUT)) out.add(TensorNames.OUTPUT);
            if (o.pruneEmbeddings() || (o.pruneHead() && !src.has(TensorNames.OUTPUT))) out.add(TensorNames.TOKEN_EMBD);
        } else {
            for (String n : new LinkedHashSet<>(o.tensors())) {
                if (!src.has(n)) throw new LatheException(src.path(), "no tensor '" + n + "' to prune");
                Tensor t = src.tensor(n);
                if (t.dims() != 2 || n.endsWith("norm.weight") || n.endsWith(".bias")) {
                    throw new LatheException(src.path(), "tensor '" + n + "' is a norm or bias and must stay dense");
                }
                if (n.equals(TensorNames.TOKEN_EMBD) && !o.pruneEmbeddings()) {
                    throw new LatheException(src.path(), "tensor '" + n + "' is the token embedding and stays dense unless embeddings are asked for");
                }
                if (n.equals(TensorNames.OUTPUT) && !o.pruneHead()) {
                    throw new LatheException(src.path(), "tensor '" + n + "' is the output head and stays dense unless the head is asked for");
                }
                out.add(n);
            }
        }
        for (String n : out) {
            Tensor t = src.tensor(n);
            if (o.pattern().isNm() && t.cols() % o.pattern().m() != 0) {
                throw new LatheException(src.path(), "N:M pattern " + o.pattern().n() + ":" + o.pattern().m() + " does not divide the row length " + t.cols() + " of '" + n + "'");
            }
            if (o.method() == Method.WANDA) {
                float[] norms = o.columnNorms().get(n);
                if (norms == null) throw new LatheException(src.path(), "Wanda needs column norms for '" + n + "'");
                if (norms.length != t.cols()) throw new LatheException(src.path(), "Wanda norms for '" + n + "' have " + norms.length + " values, the layer has " + t.cols() + " inputs");
            }
            if (t.numElements() > Integer.MAX_VALUE - 8) throw new LatheException(src.path(), "tensor '" + n + "' is too large to prune in memory");
        }
        return out;
    }

    /**
     * Prunes {@code src} as {@code o} says. Per row or per matrix the result is lazy: each pruned matrix is computed
     * from the source when it is asked for (and again if asked again), so writing a pruned model holds one matrix
     * in memory, not every matrix as floats (a 1.1B F16 model took 10.5 GB of RSS that way). A non-finite weight is
     * then reported when its matrix is computed. A global threshold needs every score first, so that scope is
     * computed at once, as is the progress it reports.
     */
    public static Result prune(WeightSource src, Options o, Progress progress) {
        List<String> names = targets(src, o);
        if (o.scope() != Scope.GLOBAL) {
            PrunedSource ps = new PrunedSource(src, names, n -> pruneOne(src, o, n));
            return new Result(ps, ps.lazyStats());
        }
        Map<String, float[]> pruned = new LinkedHashMap<>();
        List<TensorStat> stats = new ArrayList<>();
        List<float[]> scores = new ArrayList<>();
        int done = 0;
        for (String n : names) {
            Tensor t = src.tensor(n);
            int rows = (int) t.rows(), cols = (int) t.cols();
            float[] w = TensorOps.toFloats(t);
            for (float v : w) if (!Float.isFinite(v)) throw new LatheException(src.path(), "tensor '" + n + "' holds a non-finite value");
            float[] s = o.method() == Method.WANDA ? Pruner.wandaScores(w, rows, cols, o.columnNorms().get(n)) : Pruner.magnitudeScores(w);
            if (o.scope() == Scope.GLOBAL) {
                scores.add(s);
            } else {
                Pruner.prune(w, s, rows, cols, o.pattern(), o.scope() == Scope.ROW ? Pruner.Scope.ROW : Pruner.Scope.LAYER);
            }
            pruned.put(n, w);
            progress.update("prune", ++done, names.size());
        }
        if (o.scope() == Scope.GLOBAL) Pruner.pruneGlobal(new ArrayList<>(pruned.values()), scores, o.pattern().sparsity());
        for (String n : names) {
            Tensor t = src.tensor(n);
            float[] w = pruned.get(n);
            long z = 0;
            for (float v : w) if (v == 0f) z++;
            stats.add(new TensorStat(n, t.rows(), t.cols(), z));
        }
        return new Result(new PrunedSource(src, pruned), List.copyOf(stats));
    }

    /** One matrix pruned per row or per matrix (the lazy result's computation). */
    private static float[] pruneOne(WeightSource src, Options o, String n) {
        Tensor t = src.tensor(n);
        int rows = (int) t.rows(), cols = (int) t.cols();
        float[] w = TensorOps.toFloats(t);
        for (float v : w) if (!Float.isFinite(v)) throw new LatheException(src.path(), "tensor '" + n + "' holds a non-finite value");
        float[] s = o.method() == Method.WANDA ? Pruner.wandaScores(w, rows, cols, o.columnNorms().get(n)) : Pruner.magnitudeScores(w);
        Pruner.prune(w, s, rows, cols, o.pattern(), o.scope() == Scope.ROW ? Pruner.Scope.ROW : Pruner.Scope.LAYER);
        return w;
    }

    /**
     * The source with the pruned matrices replaced by F32 weights (zeros kept); everything else delegated. Either
     * holds the pruned weights, or computes each matrix when asked ({@link #computesTensor}).
     */
    public static final class PrunedSource implements WeightSource {
        private final WeightSource base;
        private final Map<String, float[]> pruned;
        private final Set<String> names;
        private final java.util.function.Function<String, float[]> compute;
        private final Map<String, Long> zeros = new java.util.concurrent.ConcurrentHashMap<>();

        PrunedSource(WeightSource base, Map<String, float[]> pruned) {
            this.base = base;
            this.pruned = pruned;
            this.names = java.util.Collections.unmodifiableSet(pruned.keySet());
            this.compute = null;
        }

        PrunedSource(WeightSource base, List<String> names, java.util.function.Function<String, float[]> compute) {
            this.base = base;
            this.pruned = null;
            this.names = java.util.Collections.unmodifiableSet(new LinkedHashSet<>(names));
            this.compute = compute;
        }

        /** Canonical names of the pruned matrices. */
        public Set<String> prunedNames() {
            return names;
        }

        /** The pruned weights of a pruned matrix (row-major; held ones are not copied, lazy ones are computed anew). */
        public float[] weights(String name) {
            if (!names.contains(name)) throw new IllegalArgumentException(name + " was not pruned");
            if (pruned != null) return pruned.get(name);
            float[] w = compute.apply(name);
            long z = 0;
            for (float v : w) if (v == 0f) z++;
            zeros.put(name, z);
            return w;
        }

        /** Per-matrix statistics; for a lazy source each matrix is computed the first time its entry is read, unless writing did it already. */
        List<TensorStat> lazyStats() {
            List<String> order = List.copyOf(names);
            return new java.util.AbstractList<>() {
                @Override
                public TensorStat get(int i) {
                    String n = order.get(i);
                    Long z = zeros.get(n);
                    if (z == null) {
                        weights(n);
                        z = zeros.get(n);
                    }
                    long[] sh = base.shape(n);
                    return new TensorStat(n, sh[0], sh[1], z);
                }

                @Override
                public int size() {
                    return order.size();
                }
            };
        }

        @Override
        public boolean computesTensor(String name) {
            return compute != null && names.contains(name);
        }

        @Override
        public long[] shape(String name) {
            return base.shape(name);
        }

        @Override
        public java.nio.file.Path path() {
            return base.path();
        }

        @Override
        public ModelConfig config() {
            return base.config();
        }

        @Override
        public Set<String> tensorNames() {
            return base.tensorNames();
        }

        @Override
        public Tensor tensor(String name) {
            if (!names.contains(name)) return base.tensor(name);
            // weights kept in a file: mapped, not read into the heap
            if (pruned instanceof SpillMap spill) return new Tensor(name, dev.lathe.tensor.GgmlType.F32, base.shape(name), spill.segment(name));
            return TensorOps.viewFloats(name, base.shape(name), weights(name));
        }

        @Override
        public java.util.Optional<dev.lathe.io.gguf.GgufFile> gguf() {
            return base.gguf();
        }

        @Override
        public java.util.Optional<java.nio.file.Path> hfFolder() {
            return base.hfFolder();
        }

        /** Deletes the file pruned weights were kept in, if any; does not close the base source (its owner does). */
        @Override
        public void close() {
            if (pruned instanceof SpillMap spill) spill.close();
        }

        @Override
        public String toString() {
            return "pruned " + base.path() + " " + Arrays.toString(names.toArray());
        }
    }
}
