package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.Parallel;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The sequential calibration pipeline (as GPTQ / llm-compressor run it): the calibration samples are
 * embedded, then for each decoder block in turn the recipe's modifiers see the activations entering the
 * block, collect statistics (importance = Σx² per input column, Hessian XᵀX), transform and quantize the
 * block's weights; the block's outputs under its compressed weights become the next block's inputs. Only
 * one block's activations (one {@code [tokens, dim]} array per sample) and one block's weights are held
 * at a time.
 */
public final class Calibrator {
    private Calibrator() {}

    /** Progress: {@code done} of {@code total} units (one unit = one sample through one block), with an ETA. */
    @FunctionalInterface
    public interface Listener {
        void update(String stage, long done, long total, double etaSeconds);

        Listener NONE = (s, d, t, e) -> {};
    }

    /**
     * @param f16Attention round q/K/V and attention probabilities to F16 like llama.cpp's default KV cache
     */
    public record Options(boolean f16Attention, Parallel pool) {
        public static Options defaults() {
            return new Options(false, Parallel.common());
        }
    }

    /** Runs the recipe ({@code data} may be null for methods that need no calibration); returns the quantized weights by tensor name (tensors no modifier quantized are absent), and the norm vectors a modifier changed ({@link QuantizedWeight#isFloatVector}). */
    public static Map<String, QuantizedWeight> run(WeightSource src, CalibrationData data, QuantPlan plan, List<Modifier> recipe,
                                                   Options opt, Listener listener) {
        ModelConfig c = src.config();
        int dim = c.dim();
        List<int[]> samples = data == null ? List.of() : data.samples();
        for (int[] s : samples) {
            if (s.length > c.contextLength()) {
                throw new LatheException(src.path(), "calibration sample of " + s.length + " tokens exceeds the context length " + c.contextLength());
            }
        }
        Tensor emb = src.tensor(TensorNames.TOKEN_EMBD);
        if (emb.dims() != 2 || emb.cols() != dim) throw new LatheException(src.path(), "token embedding has shape " + java.util.Arrays.toString(emb.shape()));
        var codec = BlockCodecs.get(emb.type());
        long rb = emb.rowBytes();
        List<float[]> x = new ArrayList<>();
        for (int[] s : samples) {
            float[] a = new float[s.length * dim];
            for (int t = 0; t < s.length; t++) {
                if (s[t] < 0 || s[t] >= emb.rows()) throw new LatheException(src.path(), "calibration token id " + s[t] + " out of range [0, " + emb.rows() + ")");
                codec.dequantize(emb.data(), s[t] * rb, a, t * dim, dim);
            }
            x.add(a);
        }
        int passes = 2;
        for (Modifier m : recipe) passes += m.passesPerBlock();
        long total = (long) c.nLayers() * Math.max(1, samples.size()) * passes;
        long t0 = System.nanoTime();
        long[] done = {0};
        Runnable tick = () -> {
            done[0] = Math.min(done[0] + 1, total - 1);
            double el = (System.nanoTime() - t0) / 1e9;
            listener.update("calibrate", done[0], total, el * (total - done[0]) / done[0]);
        };
        BlockRunner runner = new BlockRunner(c, LlamaModel.ropeInverseFrequencies(src), opt.f16Attention(), opt.pool());
        Map<String, QuantizedWeight> results = new LinkedHashMap<>();
        for (int l = 0; l < c.nLayers(); l++) {
            BlockWeights bw = BlockWeights.load(src, l);
            BlockContext ctx = new BlockContext(bw, x, samples, runner, plan, results, opt.pool(), tick);
            for (Modifier m : recipe) m.applyToBlock(ctx);
            // norms a modifier changed (AWQ's folded scales) are written in place of the source's
            for (String[] nv : new String[][]{{"attn_norm.weight", "a"}, {"ffn_norm.weight", "f"}}) {
                String name = TensorNames.layer(l, nv[0]);
                float[] now = nv[1].equals("a") ? bw.attnNorm : bw.ffnNorm;
                if (!java.util.Arrays.equals(now, BlockWeights.vector(src, name, dim))) results.put(name, QuantizedWeight.f32(name, now));
            }
            x = ctx.outputs();
            done[0] = (long) (l + 1) * Math.max(1, samples.size()) * passes;
            listener.update("calibrate", Math.min(done[0], total), total, 0);
        }
        final List<float[]> last = x;
        float[] outNorm = BlockWeights.vector(src, TensorNames.OUTPUT_NORM, dim);
        java.util.function.Function<Boolean, InputStats> outStats = hess -> {
            if (last.isEmpty()) throw new LatheException("this method needs calibration data (--calib)");
            InputStats st = new InputStats(dim, hess);
            for (int s = 0; s < last.size(); s++) {
                int n = samples.get(s).length;
                float[] h = new float[n * dim];
                BlockRunner.rmsNormRows(last.get(s), outNorm, h, n, dim, c.normEps());
                st.add(h, n, opt.pool());
            }
            return st;
        };
        ModelContext mc = new ModelContext(src, plan, results, memo(() -> outStats.apply(false)), memo(() -> outStats.apply(true)));
        for (Modifier m : recipe) m.finish(mc);
        return results;
    }

    private static <T> java.util.function.Supplier<T> memo(java.util.function.Supplier<T> s) {
        return new java.util.function.Supplier<>() {
            T v;

            @Override
            public synchronized T get() {
                if (v == null) v = s.get();
                return v;
            }
        };
    }
}
