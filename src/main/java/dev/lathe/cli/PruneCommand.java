package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.io.Converter;
import dev.lathe.io.ModelLoader;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.model.WeightSource;
import dev.lathe.prune.SparseSafetensors;
import dev.lathe.prune.ModelPruner;
import dev.lathe.prune.Pattern;
import dev.lathe.prune.SparseMatrix;
import dev.lathe.prune.ValueType;
import dev.lathe.prune.PruneJob;
import dev.lathe.prune.Pruner;
import dev.lathe.prune.SparseGpt;
import dev.lathe.compress.QuantPlan;
import dev.lathe.compress.WeightFormat;
import dev.lathe.io.gguf.GgufValue;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "prune", mixinStandardHelpOptions = true,
        description = {"Prune the matrix layers of a model (in one shot, or in rounds with recovery fine-tuning: --iterative) and save it: magnitude, Wanda or",
                "SparseGPT (sequential, with the calibration Hessians), uniform or OWL per-layer sparsity; SparseGPT can",
                "quantize jointly (--type): the surviving weights land on the grid in the same sweep.",
                "Output: a Hugging Face folder, dense (zeros kept) or in the compressed-tensors sparse layout that",
                "Lathe runs with sparse kernels; or, when OUT ends in .gguf, a dense GGUF for llama.cpp.",
                "llama.cpp gains nothing from the zeros themselves: a pruned GGUF is only smaller or faster after",
                "quantization (pruning then quantizing loses less than either alone at the same size, sometimes)."})
final class PruneCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "input model (GGUF, HF folder or safetensors file, llama2.c .bin)")
    Path in;

    @Option(names = {"-o", "--output"}, required = true, description = "output HF folder (new or empty), or .gguf file")
    Path out;

    @Option(names = "--method", defaultValue = "magnitude", description = "magnitude, wanda or sparsegpt (default ${DEFAULT-VALUE})")
    String method;

    @Option(names = "--sparsity", description = "fraction of weights to remove, in [0, 1)")
    Double sparsity;

    @Option(names = "--pattern", description = "N:M pattern, e.g. 2:4 or 4:8 (N kept in every M)")
    String pattern;

    @Option(names = "--scope", description = "row, layer or global (unstructured magnitude/wanda; default: layer for magnitude, row for wanda; global: uncalibrated magnitude only)")
    String scope;

    @Option(names = "--format", description = "dense, bitmask or nm (default: nm for --pattern 2:4, bitmask otherwise; dense for .gguf)")
    String format;

    @Option(names = "--dtype", description = "value type of the output: f32, f16 or bf16 (default: the input's if F32/F16/BF16, else f16)")
    String dtype;

    @Option(names = "--tensors", split = ",", description = "canonical names of the tensors to prune (default: every block matrix)")
    List<String> tensors = new ArrayList<>();

    @Option(names = "--prune-embeddings", description = "also prune the token embedding")
    boolean pruneEmbeddings;

    @Option(names = "--prune-head", description = "also prune the output head")
    boolean pruneHead;

    @Option(names = "--norms", description = "Wanda: safetensors file of per-column input L2 norms, one F32 tensor per canonical weight name (instead of --calib)")
    Path norms;

    @Option(names = "--type", description = "sparsegpt: quantize jointly to Q4_K, Q4_0, Q8_0, ... (a .gguf OUT) or int4-g128, ... (a compressed-tensors folder)")
    String type;

    @Option(names = "--allocation", defaultValue = "uniform", description = "uniform or owl (per-layer sparsity from outlier ratios; needs --calib; default ${DEFAULT-VALUE})")
    String allocation;

    @Option(names = "--owl-lambda", defaultValue = "0.08", description = "OWL: layer sparsities within target ± lambda (default ${DEFAULT-VALUE})")
    double owlLambda;

    @Option(names = "--owl-m", defaultValue = "5", description = "OWL: an outlier scores above M x the layer mean (default ${DEFAULT-VALUE})")
    double owlM;

    @Option(names = "--calib", split = ",", description = "calibration text files or folders (comma separated): wanda, sparsegpt, owl")
    List<Path> calib;

    @Option(names = "--samples", defaultValue = "128", description = "calibration samples (default ${DEFAULT-VALUE})")
    int samples;

    @Option(names = "--seq-len", defaultValue = "512", description = "tokens per calibration sample, at most the context length (default ${DEFAULT-VALUE})")
    int seqLen;

    @Option(names = "--seed", defaultValue = "1234", description = "seed for drawing calibration windows (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--damp", defaultValue = "0.01", description = "sparsegpt: damping, fraction of the mean Hessian diagonal (default ${DEFAULT-VALUE})")
    double damp;

    @Option(names = "--block-size", defaultValue = "128", description = "sparsegpt: lazy-update and mask-selection block (default ${DEFAULT-VALUE})")
    int blockSize;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @picocli.CommandLine.Mixin
    IterativePruneOptions iterative = new IterativePruneOptions();

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        // every argument is checked before anything is read or written
        if ((sparsity == null) == (pattern == null)) throw new LatheException("give exactly one of --sparsity and --pattern");
        Pattern p = sparsity != null ? Pattern.unstructured(sparsity) : Pattern.parseNm(pattern);
        PruneJob.Method m = PruneJob.Method.parse(method);
        PruneJob.Allocation alloc = PruneJob.Allocation.parse(allocation);
        // magnitude and Wanda with given norms run without calibration; the rest goes through the calibration pipeline
        boolean calibrated = m == PruneJob.Method.SPARSEGPT || alloc == PruneJob.Allocation.OWL || (m == PruneJob.Method.WANDA && norms == null);
        if (m == PruneJob.Method.SPARSEGPT && scope != null) throw new LatheException("--scope does not apply to sparsegpt (it chooses its mask per block of columns over all rows)");
        ModelPruner.Scope sc = switch (scope == null ? (m == PruneJob.Method.WANDA ? "row" : "layer") : scope.toLowerCase(Locale.ROOT)) {
            case "row" -> ModelPruner.Scope.ROW;
            case "layer" -> ModelPruner.Scope.LAYER;
            case "global" -> ModelPruner.Scope.GLOBAL;
            default -> throw new LatheException("--scope must be row, layer or global, not '" + scope + "'");
        };
        if (p.isNm()) sc = ModelPruner.Scope.ROW;
        if (calibrated && sc == ModelPruner.Scope.GLOBAL) throw new LatheException("--scope global is for magnitude pruning without calibration (not with wanda, sparsegpt or --allocation owl)");
        if (norms != null && m != PruneJob.Method.WANDA) throw new LatheException("--norms is only used by --method wanda");
        if (norms != null && calib != null) throw new LatheException("give --norms or --calib for wanda, not both");
        if (norms != null && alloc == PruneJob.Allocation.OWL) throw new LatheException("--allocation owl runs its own calibration pass; use --calib instead of --norms");
        if (calibrated && (calib == null || calib.isEmpty())) {
            throw new LatheException((m == PruneJob.Method.MAGNITUDE ? "--allocation owl" : "--method " + m.name().toLowerCase(Locale.ROOT))
                    + " needs calibration text (--calib FILE)" + (m == PruneJob.Method.WANDA ? " or per-column norms (--norms FILE)" : ""));
        }
        if (calibrated && (pruneEmbeddings || pruneHead)) throw new LatheException("--prune-embeddings and --prune-head work without calibration only (magnitude, wanda --norms)");
        SparseGpt.Options sgo = new SparseGpt.Options(damp, blockSize);
        boolean gguf = out.toString().toLowerCase(Locale.ROOT).endsWith(".gguf");
        boolean quantize = type != null;
        boolean intType = false, int8Sparse = false;
        if (quantize) {
            if (m != PruneJob.Method.SPARSEGPT) throw new LatheException("--type (joint quantization) needs --method sparsegpt; quantize a pruned model with 'lathe quantize'");
            intType = !QuantPlan.isLlamaCppType(type) && WeightFormat.parse(type) instanceof WeightFormat.Int; // unknown types throw here
            if (intType && gguf) throw new LatheException("--type " + type + " writes a compressed-tensors folder; OUT must not be a .gguf file");
            if (!intType && !gguf) {
                // the sparse layout holds int8 values with a scale per 32 columns: exactly Q8_0's grid
                if (!type.equalsIgnoreCase("Q8_0")) throw new LatheException("--type " + type + " writes GGUF; OUT must end in .gguf (an HF folder OUT holds the sparse layout with int8 values: --type Q8_0)");
                int8Sparse = true;
            }
            if (!int8Sparse && (format != null || dtype != null)) throw new LatheException("--format and --dtype do not apply with --type " + type + " (the output holds the quantized weights)");
            if (int8Sparse && format != null && format.equalsIgnoreCase("dense")) throw new LatheException("--type Q8_0 into a folder writes the sparse layout with int8 values; --format must be bitmask or nm");
        }
        String fmtName = format != null ? format.toLowerCase(Locale.ROOT) : gguf ? "dense" : p.isNm() && p.n() == 2 && p.m() == 4 ? "nm" : "bitmask";
        SparseSafetensors.Format fmt = switch (fmtName) {
            case "dense" -> SparseSafetensors.Format.DENSE;
            case "bitmask" -> SparseSafetensors.Format.BITMASK;
            case "nm" -> SparseSafetensors.Format.NM;
            default -> throw new LatheException("--format must be dense, bitmask or nm, not '" + format + "'");
        };
        if (gguf && fmt != SparseSafetensors.Format.DENSE) throw new LatheException("GGUF output is dense (llama.cpp has no sparse tensors); use --format dense or an HF folder");
        if (fmt == SparseSafetensors.Format.NM && !(p.isNm() && p.n() == 2 && p.m() == 4)) {
            throw new LatheException("--format nm writes compressed-tensors sparse-24-bitmask and needs --pattern 2:4 (other patterns: --format bitmask)");
        }
        if (iterative.active() && calibrated) {
            throw new LatheException("--iterative / --recover-steps work with magnitude pruning or wanda with --norms (no calibration pass per round)");
        }
        iterative.check(p, m == PruneJob.Method.WANDA ? ModelPruner.Method.WANDA : ModelPruner.Method.MAGNITUDE);
        if (gguf) {
            if (Files.isDirectory(out)) throw new LatheException(out, "output is a folder, not a .gguf file");
        } else {
            SparseSafetensors.checkOutput(out);
        }
        GgmlType dt = null;
        if (dtype != null) {
            dt = switch (dtype.toLowerCase(Locale.ROOT)) {
                case "f32" -> GgmlType.F32;
                case "f16" -> GgmlType.F16;
                case "bf16" -> GgmlType.BF16;
                default -> throw new LatheException("--dtype must be f32, f16 or bf16, not '" + dtype + "'");
            };
        }
        long t0 = System.nanoTime();
        Map<String, Object> o = new LinkedHashMap<>();
        try (WeightSource src = ModelLoader.open(in); CliProgress bar = new CliProgress("prune " + m.name().toLowerCase(Locale.ROOT))) {
            ModelPruner.Result r;
            PruneJob.Result pr = null;
            List<String> targets;
            if (calibrated) {
                Pruner.Scope ps = sc == ModelPruner.Scope.ROW ? Pruner.Scope.ROW : Pruner.Scope.LAYER;
                PruneJob.Options po = new PruneJob.Options(m, p, m == PruneJob.Method.SPARSEGPT ? null : ps, alloc, owlLambda, owlM, tensors, type,
                        calib, samples, seqLen, seed, sgo);
                targets = PruneJob.targets(src, po);
                PruneJob.check(src, po); // names, shapes, the pattern and the plan before the work
                pr = PruneJob.run(src, po, (stage, done, total, eta) -> bar.update(done, total, stage));
                r = new ModelPruner.Result(pr.source(), pr.stats());
            } else {
                Map<String, float[]> colNorms = norms == null ? Map.of() : readNorms(norms);
                ModelPruner.Method mm = m == PruneJob.Method.WANDA ? ModelPruner.Method.WANDA : ModelPruner.Method.MAGNITUDE;
                ModelPruner.Options opts = new ModelPruner.Options(mm, p, sc, pruneEmbeddings, pruneHead, tensors, colNorms);
                targets = ModelPruner.targets(src, opts); // checks names, shapes and the pattern before the work
                r = iterative.active() ? iterative.run(src, opts, json, o)
                        : ModelPruner.prune(src, opts, (stage, done, total) -> bar.update(done, total, stage));
            }
            if (dt == null) {
                GgmlType t = src.tensor(targets.get(0)).type();
                dt = t == GgmlType.F32 || t == GgmlType.BF16 || t == GgmlType.F16 ? t : GgmlType.F16;
            }
            long bytesBefore = 0;
            for (String n : src.tensorNames()) bytesBefore += src.tensor(n).data().byteSize();
            String structure = p.isNm() ? p.n() + ":" + p.m() : "unstructured";
            long written;
            if (int8Sparse) {
                written = SparseSafetensors.write(r.source(), out, fmt, dt, true, structure, (stage, done, total) -> bar.update(done, total, stage));
            } else if (quantize) {
                Map<String, GgufValue> extra = new LinkedHashMap<>();
                extra.put("lathe.prune.method", GgufValue.string(m.name().toLowerCase(Locale.ROOT)));
                extra.put("lathe.prune.pattern", GgufValue.string(structure));
                extra.put("lathe.prune.sparsity", GgufValue.f32((float) pr.sparsity()));
                PruneJob.writeQuantized(src, pr, extra, out, (stage, done, total) -> bar.update(done, total, stage));
                written = ConvertCommand.size(out);
            } else if (gguf) {
                Converter.toGguf(r.source(), out, dt, (stage, done, total) -> bar.update(done, total, stage));
                written = ConvertCommand.size(out);
            } else {
                written = SparseSafetensors.write(r.source(), out, fmt, dt, structure, (stage, done, total) -> bar.update(done, total, stage));
            }
            o.put("input", in.toString());
            o.put("output", out.toString());
            o.put("method", m.name().toLowerCase(Locale.ROOT));
            o.put("pattern", structure);
            if (m != PruneJob.Method.SPARSEGPT) o.put("scope", sc.name().toLowerCase(Locale.ROOT));
            o.put("allocation", alloc.name().toLowerCase(Locale.ROOT));
            o.put("format", int8Sparse ? fmtName + "-int8" : quantize ? (intType ? "compressed-tensors" : "gguf") : gguf ? "gguf-dense" : fmtName);
            if (quantize) o.put("type", pr.plan().name());
            if (!quantize || int8Sparse) o.put("dtype", dt.name());
            o.put("target_sparsity", p.sparsity());
            o.put("sparsity", r.sparsity());
            if (pr != null) {
                int layers = src.config().nLayers();
                o.put("layer_sparsity", pr.layerSparsity(layers));
                if (pr.outlierRatios() != null) {
                    o.put("layer_target_sparsity", pr.layerTargets());
                    o.put("outlier_ratio", pr.outlierRatios());
                }
                if (quantize) o.put("stored_zero_fraction", (double) pr.storedZeros() / r.prunedParams());
                o.put("calibration_samples", pr.calibration() == null ? 0 : pr.calibration().size());
                o.put("calibration_tokens", pr.calibration() == null ? 0 : pr.calibration().tokens());
            }
            o.put("pruned_tensors", r.stats().size());
            o.put("pruned_params", r.prunedParams());
            o.put("zeros", r.zeros());
            o.put("bytes_before", bytesBefore);
            o.put("bytes_after", written);
            if (quantize) {
                long qb = 0;
                for (ModelPruner.TensorStat s : r.stats()) qb += pr.quantized().get(s.name()).bytes();
                o.put("matrix_bytes_quantized", qb);
                if (int8Sparse) {
                    long sb = 0;
                    for (ModelPruner.TensorStat s : r.stats()) sb += SparseMatrix.encode(r.source().weights(s.name()), (int) s.rows(), (int) s.cols(), ValueType.Q8).storageBytes();
                    o.put("matrix_bytes_sparse", sb);
                }
            } else {
                // bytes of the pruned matrices alone, dense in the output type vs in the written sparse layout (each
                // matrix sparse only where that is smaller, the writer's rule)
                long mDense = 0, mSparse = 0;
                int keptDense = 0;
                boolean nm24 = fmt == SparseSafetensors.Format.NM;
                for (ModelPruner.TensorStat s : r.stats()) {
                    long d = s.rows() * s.cols() * dt.typeSize;
                    mDense += d;
                    // the bitmask layout stores the non-zeros; 2:4 stores exactly two per group
                    long kept = nm24 ? s.rows() * s.cols() / 2 : s.rows() * s.cols() - s.zeros();
                    long sb = SparseSafetensors.storedBytes((int) s.rows(), (int) s.cols(), kept, dt.typeSize, false, nm24);
                    if (sb < d) {
                        mSparse += sb;
                    } else {
                        mSparse += d;
                        keptDense++;
                    }
                }
                o.put("matrix_bytes_dense", mDense);
                o.put("matrix_bytes_sparse", mSparse);
                o.put("matrices_kept_dense", keptDense);
            }
            o.put("seconds", (System.nanoTime() - t0) / 1e9);
            r.source().close(); // deletes the temporary file of a calibrated run's pruned weights (else removed at exit)
        }
        if (json) {
            stdout.println(Json.of(o));
        } else {
            stdout.printf(Locale.ROOT, "pruned %d tensors to %.2f%% sparsity (%s, %s); wrote %s (%s, %,d bytes; input %,d bytes) in %.1f s%n",
                    o.get("pruned_tensors"), 100 * (double) o.get("sparsity"), o.get("method"), o.get("pattern"), out, o.get("format"),
                    (long) o.get("bytes_after"), (long) o.get("bytes_before"), (double) o.get("seconds"));
            if (o.containsKey("layer_target_sparsity")) {
                StringBuilder b = new StringBuilder("OWL layer sparsity:");
                for (double v : (double[]) o.get("layer_sparsity")) b.append(String.format(Locale.ROOT, " %.3f", v));
                stdout.println(b);
            }
        }
        return 0;
    }

    private static Map<String, float[]> readNorms(Path file) {
        Map<String, float[]> m = new HashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (String n : f.entries().keySet()) {
                Tensor t = f.tensor(n);
                if (t.dims() != 1) throw new LatheException(file, "norms tensor '" + n + "' must be 1-D, got " + t);
                float[] v = f.floats(n);
                for (float x : v) if (!(x >= 0) || Float.isInfinite(x)) throw new LatheException(file, "norms tensor '" + n + "' holds " + x);
                m.put(n, v);
            }
        }
        return m;
    }
}
