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
        description = {"Prune the matrix layers of a model in one shot (no fine-tuning) and save it.",
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

    @Option(names = "--method", defaultValue = "magnitude", description = "magnitude or wanda (default ${DEFAULT-VALUE})")
    String method;

    @Option(names = "--sparsity", description = "fraction of weights to remove, in [0, 1)")
    Double sparsity;

    @Option(names = "--pattern", description = "N:M pattern, e.g. 2:4 or 4:8 (N kept in every M)")
    String pattern;

    @Option(names = "--scope", defaultValue = "layer", description = "row, layer or global (unstructured only; default ${DEFAULT-VALUE})")
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

    @Option(names = "--norms", description = "Wanda: safetensors file of per-column input L2 norms, one F32 tensor per canonical weight name")
    Path norms;

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
        ModelPruner.Method m = switch (method.toLowerCase(Locale.ROOT)) {
            case "magnitude" -> ModelPruner.Method.MAGNITUDE;
            case "wanda" -> ModelPruner.Method.WANDA;
            default -> throw new LatheException("--method must be magnitude or wanda, not '" + method + "'");
        };
        ModelPruner.Scope sc = switch (scope.toLowerCase(Locale.ROOT)) {
            case "row" -> ModelPruner.Scope.ROW;
            case "layer" -> ModelPruner.Scope.LAYER;
            case "global" -> ModelPruner.Scope.GLOBAL;
            default -> throw new LatheException("--scope must be row, layer or global, not '" + scope + "'");
        };
        if (p.isNm()) sc = ModelPruner.Scope.ROW;
        boolean gguf = out.toString().toLowerCase(Locale.ROOT).endsWith(".gguf");
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
        if (m == ModelPruner.Method.WANDA && norms == null) throw new LatheException("--method wanda needs --norms (per-column input norms from a calibration run)");
        if (m == ModelPruner.Method.MAGNITUDE && norms != null) throw new LatheException("--norms is only used by --method wanda");
        iterative.check(p, m);
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
        try (WeightSource src = ModelLoader.open(in); CliProgress bar = new CliProgress("prune", json)) {
            Map<String, float[]> colNorms = norms == null ? Map.of() : readNorms(norms);
            ModelPruner.Options opts = new ModelPruner.Options(m, p, sc, pruneEmbeddings, pruneHead, tensors, colNorms);
            ModelPruner.targets(src, opts); // checks names, shapes and the pattern before the work
            if (dt == null) {
                GgmlType t = src.tensor(ModelPruner.targets(src, opts).get(0)).type();
                dt = t == GgmlType.F32 || t == GgmlType.BF16 || t == GgmlType.F16 ? t : GgmlType.F16;
            }
            long bytesBefore = 0;
            for (String n : src.tensorNames()) bytesBefore += src.tensor(n).data().byteSize();
            ModelPruner.Result r = iterative.active() ? iterative.run(src, opts, json, o)
                    : ModelPruner.prune(src, opts, (stage, done, total) -> bar.update(done, total, stage));
            String structure = p.isNm() ? p.n() + ":" + p.m() : "unstructured";
            long written;
            if (gguf) {
                Converter.toGguf(r.source(), out, dt, (stage, done, total) -> bar.update(done, total, stage));
                written = ConvertCommand.size(out);
            } else {
                written = SparseSafetensors.write(r.source(), out, fmt, dt, structure, (stage, done, total) -> bar.update(done, total, stage));
            }
            // bytes of the pruned matrices alone, dense in the output type vs as the engine holds them sparse
            long mDense = 0, mSparse = 0;
            ValueType vt = dt == GgmlType.F32 ? ValueType.F32 : dt == GgmlType.F16 ? ValueType.F16 : ValueType.BF16;
            for (ModelPruner.TensorStat s : r.stats()) {
                mDense += s.rows() * s.cols() * dt.typeSize;
                SparseMatrix sm = SparseMatrix.encode(r.source().weights(s.name()), (int) s.rows(), (int) s.cols(), vt);
                mSparse += sm.storageBytes();
            }
            o.put("input", in.toString());
            o.put("output", out.toString());
            o.put("method", m.name().toLowerCase(Locale.ROOT));
            o.put("pattern", structure);
            o.put("scope", sc.name().toLowerCase(Locale.ROOT));
            o.put("format", gguf ? "gguf-dense" : fmtName);
            o.put("dtype", dt.name());
            o.put("target_sparsity", p.sparsity());
            o.put("sparsity", r.sparsity());
            o.put("pruned_tensors", r.stats().size());
            o.put("pruned_params", r.prunedParams());
            o.put("zeros", r.zeros());
            o.put("bytes_before", bytesBefore);
            o.put("bytes_after", written);
            o.put("matrix_bytes_dense", mDense);
            o.put("matrix_bytes_sparse", mSparse);
            o.put("seconds", (System.nanoTime() - t0) / 1e9);
        }
        if (json) {
            stdout.println(Json.of(o));
        } else {
            stdout.printf(Locale.ROOT, "pruned %d tensors to %.2f%% sparsity (%s, %s); wrote %s (%s, %,d bytes; input %,d bytes) in %.1f s%n",
                    o.get("pruned_tensors"), 100 * (double) o.get("sparsity"), o.get("method"), o.get("pattern"), out, o.get("format"),
                    (long) o.get("bytes_after"), (long) o.get("bytes_before"), (double) o.get("seconds"));
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
