package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.io.ModelLoader;
import dev.lathe.io.gguf.GgufValue;
import dev.lathe.model.Parallel;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.quant.Imatrix;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Quantizes a model end to end: picks the plan (llama.cpp mix, GGUF type or INTn), gathers calibration
 * data when the method needs it, runs the recipe through the {@link Calibrator}, and writes GGUF (block
 * types) or a compressed-tensors safetensors folder (INTn).
 */
public final class QuantizeJob {
    private QuantizeJob() {}

    public enum Method {
        RTN, IMATRIX, GPTQ, AWQ, AWQ_GPTQ;

        public static Method parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "rtn" -> RTN;
                case "imatrix" -> IMATRIX;
                case "gptq" -> GPTQ;
                case "awq" -> AWQ;
                case "awq+gptq", "awq-gptq" -> AWQ_GPTQ;
                default -> throw new LatheException("unknown --method '" + s + "' (rtn, imatrix, gptq, awq, awq+gptq)");
            };
        }

        boolean needsCalibration(boolean haveImatrix) {
            return this == GPTQ || this == AWQ || this == AWQ_GPTQ || (this == IMATRIX && !haveImatrix);
        }
    }

    /**
     * @param pure      every tensor gets the base type (llama-quantize --pure)
     * @param calib     calibration text files or folders
     * @param imatrix   an imatrix file (method imatrix)
     * @param gptqHead  GPTQ also on the output head (with the final-norm activations' Hessian); else the head
     *                  is rounded to nearest with their importance
     */
    public record Options(Method method, String type, boolean pure, List<Path> calib, int samples, int seqLen, long seed,
                          Path imatrix, Gptq.Options gptq, int awqGrid, boolean gptqHead,
                          java.util.function.Function<WeightSource, QuantPlan> planner) {
        public Options(Method method, String type, boolean pure, List<Path> calib, int samples, int seqLen, long seed,
                       Path imatrix, Gptq.Options gptq, int awqGrid, boolean gptqHead) {
            this(method, type, pure, calib, samples, seqLen, seed, imatrix, gptq, awqGrid, gptqHead, null);
        }

        public Options(Method method, String type, boolean pure, List<Path> calib, int samples, int seqLen, long seed,
                       Path imatrix, Gptq.Options gptq, int awqGrid) {
            this(method, type, pure, calib, samples, seqLen, seed, imatrix, gptq, awqGrid, true, null);
        }

        /** The same options with the per-tensor formats chosen by {@code planner} (a measured mix) instead of by {@code type}. */
        public Options withPlanner(java.util.function.Function<WeightSource, QuantPlan> planner) {
            return new Options(method, type, pure, calib, samples, seqLen, seed, imatrix, gptq, awqGrid, gptqHead, planner);
        }
    }

    public record Summary(Path output, String format, String plan, long bytes, double bitsPerWeight, long quantizedWeights,
                          Map<String, Integer> types, List<String> notes, int calibrationSamples, long calibrationTokens, double seconds) {}

    public static Summary run(Path model, Path out, Options o, Calibrator.Listener listener) {
        long t0 = System.nanoTime();
        try (WeightSource src = ModelLoader.open(model)) {
            ModelLoader.checkTensors(src);
            Imatrix im = null;
            if (o.imatrix() != null) {
                if (o.method() != Method.IMATRIX) throw new LatheException("--imatrix is only used with --method imatrix");
                im = Imatrix.readLegacy(o.imatrix());
                checkImatrix(src, im, o.imatrix());
            }
            boolean llama = QuantPlan.isLlamaCppType(o.type());
            QuantPlan plan = o.planner() != null ? o.planner().apply(src)
                    : llama ? QuantPlan.llamaCpp(src, o.type(), o.pure(), o.method() == Method.IMATRIX)
                    : QuantPlan.uniform(src, WeightFormat.parse(o.type()));
            boolean ints = plan.formats().values().stream().anyMatch(f -> f instanceof WeightFormat.Int);
            CalibrationData data = null;
            if (o.method().needsCalibration(im != null)) {
                if (o.calib() == null || o.calib().isEmpty()) throw new LatheException("--method " + o.method().name().toLowerCase(Locale.ROOT) + " needs calibration text (--calib FILE)");
                Tokenizer tok = Tokenizers.load(src).orElseThrow(() -> new LatheException(src.path(), "the model has no tokenizer (needed for calibration text)"));
                int seq = Math.min(o.seqLen(), src.config().contextLength());
                data = CalibrationData.randomWindows(o.calib(), tok, o.samples(), seq, o.seed());
            }
            List<Modifier> recipe = new ArrayList<>();
            QuantizeModifier.Method qm = switch (o.method()) {
                case RTN, AWQ -> QuantizeModifier.Method.RTN;
                case IMATRIX -> QuantizeModifier.Method.IMATRIX;
                case GPTQ, AWQ_GPTQ -> QuantizeModifier.Method.GPTQ;
            };
            if (o.method() == Method.AWQ || o.method() == Method.AWQ_GPTQ) recipe.add(new AwqModifier(o.awqGrid()));
            QuantizeModifier quant = new QuantizeModifier(qm, o.gptq(), im, o.imatrix() == null ? null : o.imatrix().toString());
            recipe.add(o.gptqHead() ? quant.withGptqHead() : quant);
            Map<String, QuantizedWeight> res = Calibrator.run(src, data, plan, recipe, new Calibrator.Options(false, Parallel.common()), listener);
            String format;
            if (ints) {
                CompressedTensors.write(src, plan, res, out);
                format = "compressed-tensors";
            } else {
                Map<String, GgufValue> extra = new LinkedHashMap<>();
                if (im != null) {
                    extra.put("quantize.imatrix.file", GgufValue.string(o.imatrix().toString()));
                    if (im.dataset() != null) extra.put("quantize.imatrix.dataset", GgufValue.string(im.dataset()));
                    extra.put("quantize.imatrix.entries_count", GgufValue.i32(im.entries().size()));
                    extra.put("quantize.imatrix.chunks_count", GgufValue.i32(im.chunks()));
                }
                GgufOutput.write(src, plan, res, extra, out, dev.lathe.io.Progress.NONE);
                format = "gguf";
            }
            long qBytes = 0, qWeights = 0;
            Map<String, Integer> types = new TreeMap<>();
            for (QuantizedWeight q : res.values()) {
                if (q.isFloatVector()) continue;
                qBytes += q.bytes();
                qWeights += (long) q.rows() * q.cols();
                String tn = q instanceof QuantizedWeight.Gguf g ? g.type().name() : ((QuantizedWeight.Int) q).format().toString();
                types.merge(tn, 1, Integer::sum);
            }
            return new Summary(out, format, plan.name(), size(out), qWeights == 0 ? 0 : 8.0 * qBytes / qWeights, qWeights, types,
                    plan.notes(), data == null ? 0 : data.size(), data == null ? 0 : data.tokens(), (System.nanoTime() - t0) / 1e9);
        }
    }

    /** An imatrix for another model: entries for tensors this model lacks, or of the wrong length. */
    static void checkImatrix(WeightSource src, Imatrix im, Path file) {
        for (Map.Entry<String, float[]> e : im.entries().entrySet()) {
            if (!src.has(e.getKey())) throw new LatheException(file, "imatrix entry " + e.getKey() + " names no tensor of " + src.path() + " (imatrix of another model?)");
            long cols = src.tensor(e.getKey()).cols();
            if (e.getValue().length != cols) {
                throw new LatheException(file, "imatrix entry " + e.getKey() + " has " + e.getValue().length + " values but the tensor has rows of " + cols + " (imatrix of another model?)");
            }
        }
    }

    static long size(Path p) {
        try (var s = Files.isDirectory(p) ? Files.walk(p) : java.util.stream.Stream.of(p)) {
            return s.filter(Files::isRegularFile).mapToLong(f -> {
                try {
                    return Files.size(f);
                } catch (IOException e) {
                    return 0;
                }
            }).sum();
        } catch (IOException e) {
            return 0;
        }
    }
}
