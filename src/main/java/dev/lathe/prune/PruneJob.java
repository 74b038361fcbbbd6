package dev.lathe.prune;

import dev.lathe.LatheException;
import dev.lathe.compress.BlockContext;
import dev.lathe.compress.BlockWeights;
import dev.lathe.compress.CalibrationData;
import dev.lathe.compress.Calibrator;
import dev.lathe.compress.CompressedTensors;
import dev.lathe.compress.GgufOutput;
import dev.lathe.compress.InputStats;
import dev.lathe.compress.Modifier;
import dev.lathe.compress.Proj;
import dev.lathe.compress.QuantPlan;
import dev.lathe.compress.QuantizedWeight;
import dev.lathe.compress.WeightFormat;
import dev.lathe.io.Progress;
import dev.lathe.io.gguf.GgufValue;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.Parallel;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.Tensor;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Calibrated pruning of a whole model through the sequential calibration pipeline: Wanda and SparseGPT
 * (optionally SparseGPT with joint quantization onto a GGUF block type or INTn grid), and magnitude, Wanda or
 * SparseGPT with OWL's per-layer sparsity allocation. Magnitude pruning with uniform sparsity and Wanda
 * with precomputed norms need no calibration: {@link ModelPruner}.
 */
public final class PruneJob {
    private PruneJob() {}

    public enum Method {
        MAGNITUDE, WANDA, SPARSEGPT;

        public static Method parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "magnitude" -> MAGNITUDE;
                case "wanda" -> WANDA;
                case "sparsegpt" -> SPARSEGPT;
                default -> throw new LatheException("--method must be magnitude, wanda or sparsegpt, not '" + s + "'");
            };
        }
    }

    public enum Allocation {
        UNIFORM, OWL;

        public static Allocation parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "uniform" -> UNIFORM;
                case "owl" -> OWL;
                default -> throw new LatheException("--allocation must be uniform or owl, not '" + s + "'");
            };
        }
    }

    /**
     * @param scope    magnitude and Wanda: where the unstructured fraction is counted (SparseGPT selects per
     *                 block of columns over all rows)
     * @param tensors  canonical names to prune (empty: the seven projections of every block)
     * @param type     SparseGPT: quantize jointly to this type (as {@code lathe quantize --type} reads it), or null
     * @param calib    calibration text files or folders
     */
    public record Options(Method method, Pattern pattern, Pruner.Scope scope, Allocation allocation, double owlLambda, double owlM,
                          List<String> tensors, String type, List<Path> calib, int samples, int seqLen, long seed,
                          SparseGpt.Options sparseGpt) {
        public Options {
            tensors = List.copyOf(tensors);
            calib = calib == null ? List.of() : List.copyOf(calib);
            if (allocation == Allocation.OWL && pattern.isNm()) {
                throw new LatheException("OWL allocates unstructured sparsity per layer; it cannot be used with an N:M pattern");
            }
            if (allocation == Allocation.OWL) {
                if (!(owlLambda >= 0 && owlLambda < 1)) throw new LatheException("--owl-lambda must be in [0, 1), got " + owlLambda);
                if (!(owlM > 0) || Double.isInfinite(owlM)) throw new LatheException("--owl-m must be positive, got " + owlM);
            }
            if (type != null && method != Method.SPARSEGPT) {
                throw new LatheException("--type (joint quantization) needs --method sparsegpt; quantize a pruned model with 'lathe quantize'");
            }
            if (type != null && !tensors.isEmpty()) throw new LatheException("--type quantizes every block matrix; it cannot be combined with --tensors");
            if (samples < 1) throw new LatheException("--samples must be >= 1, got " + samples);
            if (seqLen < 2) throw new LatheException("--seq-len must be >= 2, got " + seqLen);
        }

        public boolean needsCalibration() {
            return method != Method.MAGNITUDE || allocation == Allocation.OWL;
        }
    }

    /**
     * @param source       the pruned model (decoded weights, when quantized)
     * @param stats        per tensor: zeros = weights the mask removed
     * @param plan         the quantization plan, or null
     * @param quantized    the encoded weights (block matrices, embedding and head as the plan says), or null
     * @param layerTargets per-block target sparsity (OWL's allocation, or the uniform target)
     * @param outlierRatios per-block outlier ratio (OWL only, else null)
     * @param storedZeros  exact zeros in the decoded pruned matrices (differs from the mask on grids without an exact zero)
     */
    public record Result(ModelPruner.PrunedSource source, List<ModelPruner.TensorStat> stats, QuantPlan plan,
                         Map<String, QuantizedWeight> quantized, double[] layerTargets, double[] outlierRatios, long storedZeros,
                         CalibrationData calibration) {
        public long prunedParams() {
            return stats.stream().mapToLong(s -> s.rows() * s.cols()).sum();
        }

        public long zeros() {
            return stats.stream().mapToLong(ModelPruner.TensorStat::zeros).sum();
        }

        public double sparsity() {
            long p = prunedParams();
            return p == 0 ? 0 : (double) zeros() / p;
        }

        /** Achieved sparsity of each block's pruned matrices. */
        public double[] layerSparsity(int layers) {
            long[] z = new long[layers], n = new long[layers];
            for (ModelPruner.TensorStat s : stats) {
                int l = layerOf(s.name());
                if (l < 0 || l >= layers) continue;
                z[l] += s.zeros();
                n[l] += s.rows() * s.cols();
            }
            double[] out = new double[layers];
            for (int l = 0; l < layers; l++) out[l] = n[l] == 0 ? 0 : (double) z[l] / n[l];
            return out;
        }
    }

    static int layerOf(String name) {
        if (!name.startsWith("blk.")) return -1;
        int b = name.indexOf('.', 4);
        return b < 0 ? -1 : Integer.parseInt(name.substring(4, b));
    }

    /** The quantization plan for {@code type} as {@code lathe quantize} reads it (llama.cpp names and mixes, other GGUF types, intB[-gG]). */
    public static QuantPlan plan(WeightSource src, String type) {
        return QuantPlan.isLlamaCppType(type) ? QuantPlan.llamaCpp(src, type, false, false) : QuantPlan.uniform(src, WeightFormat.parse(type));
    }

    /** True when the plan's formats are integer (compressed-tensors output) rather than GGUF block types. */
    public static boolean isIntPlan(QuantPlan plan) {
        return plan.formats().values().stream().anyMatch(f -> f instanceof WeightFormat.Int);
    }

    /** The block matrices this run prunes, checked against the model and the pattern. */
    public static List<String> targets(WeightSource src, Options o) {
        ModelConfig c = src.config();
        List<String> all = new ArrayList<>();
        for (int l = 0; l < c.nLayers(); l++) for (Proj p : Proj.values()) all.add(p.tensorName(l));
        List<String> out = new ArrayList<>();
        if (o.tensors().isEmpty()) {
            out.addAll(all);
        } else {
            for (String n : new LinkedHashSet<>(o.tensors())) {
                if (!all.contains(n)) {
                    throw new LatheException(src.path(), "'" + n + "' is not a block projection; calibrated pruning prunes blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down}.weight");
                }
                out.add(n);
            }
        }
        for (String n : out) {
            if (!src.has(n)) throw new LatheException(src.path(), "no tensor '" + n + "' to prune");
            Tensor t = src.tensor(n);
            if (o.pattern().isNm() && t.cols() % o.pattern().m() != 0) {
                throw new LatheException(src.path(), "N:M pattern " + o.pattern().n() + ":" + o.pattern().m() + " does not divide the row length " + t.cols() + " of '" + n + "'");
            }
        }
        return out;
    }

    /** Checks everything that can be checked before the work (targets, pattern, plan); returns the plan or null. */
    public static QuantPlan check(WeightSource src, Options o) {
        targets(src, o);
        if (o.needsCalibration() && o.calib().isEmpty()) {
            String why = o.method() == Method.MAGNITUDE ? "--allocation owl" : "--method " + o.method().name().toLowerCase(Locale.ROOT);
            throw new LatheException(why + " needs calibration text (--calib FILE)");
        }
        return o.type() == null ? null : plan(src, o.type());
    }

    public static Result run(WeightSource src, Options o, Calibrator.Listener listener) {
        QuantPlan plan = check(src, o);
        ModelConfig c = src.config();
        CalibrationData data = null;
        if (o.needsCalibration()) {
            Tokenizer tok = Tokenizers.load(src).orElseThrow(() -> new LatheException(src.path(), "the model has no tokenizer (needed for calibration text)"));
            int seq = Math.min(o.seqLen(), c.contextLength());
            data = CalibrationData.randomWindows(o.calib(), tok, o.samples(), seq, o.seed());
        }
        Calibrator.Options copt = new Calibrator.Options(false, Parallel.common());
        QuantPlan none = new QuantPlan("none", -1, Map.of(), List.of());
        double[] targets = new double[c.nLayers()];
        java.util.Arrays.fill(targets, o.pattern().sparsity());
        double[] ratios = null;
        if (o.allocation() == Allocation.OWL) {
            OutlierCollector oc = new OutlierCollector(o.owlM(), c.nLayers(), new LinkedHashSet<>(targets(src, o)));
            Calibrator.run(src, data, none, List.of(oc), copt, (s, d, t, e) -> listener.update("owl outliers", d, t, e));
            ratios = oc.ratios;
            targets = Owl.allocate(ratios, o.pattern().sparsity(), o.owlLambda());
        }
        Pruner.Scope scope = o.scope() == null ? (o.method() == Method.WANDA ? Pruner.Scope.ROW : Pruner.Scope.LAYER) : o.scope();
        // the pruned matrices go to a temporary file block by block: the heap holds one block, not the model
        SpillMap store = new SpillMap();
        PruneModifier pm = new PruneModifier(o.method(), o.pattern(), targets, scope, new LinkedHashSet<>(o.tensors()), o.sparseGpt(), plan != null, store);
        CalibrationData pass = o.method() == Method.MAGNITUDE ? null : data;
        Map<String, QuantizedWeight> q;
        try {
            q = Calibrator.run(src, pass, plan == null ? none : plan, List.<Modifier>of(pm), copt, (s, d, t, e) -> listener.update(pm.name(), d, t, e));
        } catch (RuntimeException | Error e) {
            store.close();
            throw e;
        }
        List<ModelPruner.TensorStat> stats = new ArrayList<>();
        for (String n : pm.pruned().keySet()) {
            long[] sh = src.shape(n);
            stats.add(new ModelPruner.TensorStat(n, sh[0], sh[1], pm.masked().get(n)));
        }
        return new Result(new ModelPruner.PrunedSource(src, pm.pruned()), List.copyOf(stats), plan, plan == null ? null : q,
                targets, ratios, pm.storedZeros(), data);
    }

    /**
     * Writes a jointly pruned and quantized model: GGUF in llama-quantize's layout (GGUF block types; the
     * pruned weights are stored as the block type's zeros), or a compressed-tensors pack-quantized folder
     * (INTn), written into a temporary folder beside {@code out} and renamed into place.
     */
    public static void writeQuantized(WeightSource src, Result r, Map<String, GgufValue> extra, Path out, Progress progress) {
        if (r.quantized() == null) throw new IllegalArgumentException("not quantized");
        if (!isIntPlan(r.plan())) {
            GgufOutput.write(src, r.plan(), r.quantized(), extra, out, progress);
            return;
        }
        SparseSafetensors.checkOutput(out);
        Path parent = out.toAbsolutePath().getParent();
        Path tmp = null;
        try {
            Files.createDirectories(parent);
            tmp = Files.createTempDirectory(parent, "." + out.getFileName() + ".tmp-");
            CompressedTensors.write(src, r.plan(), r.quantized(), tmp);
            if (Files.isDirectory(out)) Files.delete(out); // empty, checked above
            Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
            tmp = null;
        } catch (IOException e) {
            throw new LatheException(out, "cannot write: " + e.getMessage(), e);
        } finally {
            if (tmp != null) SparseSafetensors.deleteTree(tmp);
        }
    }

    /** OWL's first pass: the outlier ratio of every block of the dense model (nothing is changed). */
    static final class OutlierCollector implements Modifier {
        final double m;
        final double[] ratios;
        final java.util.Set<String> targets;

        OutlierCollector(double m, int layers, java.util.Set<String> targets) {
            this.m = m;
            this.ratios = new double[layers];
            this.targets = targets;
        }

        @Override
        public String name() {
            return "owl";
        }

        @Override
        public void applyToBlock(BlockContext ctx) {
            BlockWeights bw = ctx.weights();
            Map<Proj.Input, InputStats> st = ctx.stats(false);
            Owl.Counter counter = new Owl.Counter(m);
            for (int pass = 0; pass < 2; pass++) {
                for (Proj p : Proj.values()) {
                    if (!targets.contains(p.tensorName(bw.layer()))) continue;
                    float[] norms = Pruner.columnNorms(st.get(p.input).sumSq);
                    if (pass == 0) counter.addMean(bw.weight(p), bw.rows(p), bw.cols(p), norms);
                    else counter.addCount(bw.weight(p), bw.rows(p), bw.cols(p), norms);
                }
            }
            ratios[bw.layer()] = counter.ratio();
        }
    }
}
