package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.model.Parallel;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * How much GPTQ lowers each tensor's error in each candidate format, for a mix that will be quantized with GPTQ:
 * a measured mix ({@code quantize --type auto}) prices every candidate by the KL divergence of its round-to-nearest
 * form, but GPTQ does not shrink every format's error by the same factor (it gains more where rounding is coarse
 * and where a layer's inputs are correlated), so prices measured on RTN misplace bits for a GPTQ file.
 * <p>
 * For every quantizable tensor and format this runs the calibration text through the unchanged model (each tensor
 * is judged alone, as the KLD measurements are), then rounds the tensor to nearest (no importance, as the
 * measurements do) and quantizes it with GPTQ (with the block's Hessian and importance, as {@link QuantizeModifier}
 * will), and reports the layer-output errors ‖X(W − Ŵ)ᵀ‖² of both ({@link Gptq#outputError}). The KL divergence
 * is locally quadratic in the output error, so {@code KLD_gptq ≈ KLD_rtn × gptqError / rtnError}.
 * The token embedding is always rounded to nearest (ratio 1); the head uses the final-norm activations' Hessian,
 * with GPTQ or (when the head stays round-to-nearest) importance-weighted rounding.
 */
public final class GptqGain {
    private GptqGain() {}

    /** The output errors of one tensor in one format. */
    public record Gain(String tensor, WeightFormat format, double rtnError, double gptqError) {
        /** gptqError / rtnError (1 when the tensor has no rounding error). */
        public double ratio() {
            return rtnError > 0 ? gptqError / rtnError : 1.0;
        }
    }

    /** After each tensor (all its formats): how many are done of how many, and the seconds so far. */
    @FunctionalInterface
    public interface Listener {
        void done(int done, int total, double seconds);
    }

    /**
     * @param candidates formats per tensor (tensors absent here are skipped)
     * @param gptqHead   the head will be quantized with GPTQ (else rounded to nearest with importance)
     * @return the gains by tensor, then format
     */
    public static Map<String, Map<WeightFormat, Gain>> measure(WeightSource src, CalibrationData data,
                                                               Map<String, ? extends List<? extends WeightFormat>> candidates,
                                                               Gptq.Options o, boolean gptqHead, Parallel pool, Listener listener) {
        if (data == null || data.samples().isEmpty()) throw new LatheException("the GPTQ gains need calibration data (--calib)");
        Map<String, Map<WeightFormat, Gain>> out = new LinkedHashMap<>();
        Map<String, WeightFormat> first = new LinkedHashMap<>();
        for (var e : candidates.entrySet()) if (!e.getValue().isEmpty()) first.put(e.getKey(), e.getValue().get(0));
        QuantPlan plan = QuantPlan.of(src, "gptq-gain", first, List.of());
        int total = first.size();
        long t0 = System.nanoTime();
        Modifier probe = new Modifier() {
            @Override
            public String name() {
                return "gptq-gain";
            }

            @Override
            public void applyToBlock(BlockContext ctx) {
                BlockWeights bw = ctx.weights();
                Map<Proj.Input, InputStats> stats = null;
                Map<Proj.Input, Gptq.Factor> factors = new java.util.EnumMap<>(Proj.Input.class);
                for (Proj p : Proj.values()) {
                    String name = p.tensorName(bw.layer());
                    List<? extends WeightFormat> fs = candidates.get(name);
                    if (fs == null || fs.isEmpty()) continue;
                    if (stats == null) stats = ctx.stats(true);
                    int rows = bw.rows(p), cols = bw.cols(p);
                    InputStats st = stats.get(p.input);
                    double[] h = st.hessian();
                    Gptq.Factor fac = factors.computeIfAbsent(p.input, in -> Gptq.factor(name, h, cols, o));
                    float[] w = bw.weight(p);
                    Map<WeightFormat, Gain> m = new LinkedHashMap<>();
                    for (WeightFormat f : fs) {
                        float[] r = Grid.of(f, name, rows, cols, null).roundToNearest(w, ctx.pool());
                        float[] g = Gptq.quantize(name, w, rows, cols, fac, o, Grid.of(f, name, rows, cols, st.importance()), ctx.pool());
                        m.put(f, new Gain(name, f, Gptq.outputError(w, r, rows, cols, h), Gptq.outputError(w, g, rows, cols, h)));
                    }
                    out.put(name, m);
                    listener.done(out.size(), total, (System.nanoTime() - t0) / 1e9);
                }
            }

            @Override
            public void finish(ModelContext mc) {
                for (String name : new String[]{TensorNames.TOKEN_EMBD, TensorNames.OUTPUT}) {
                    List<? extends WeightFormat> fs = candidates.get(name);
                    if (fs == null || fs.isEmpty() || !src.has(name)) continue;
                    Map<WeightFormat, Gain> m = new LinkedHashMap<>();
                    if (name.equals(TensorNames.TOKEN_EMBD)) {
                        for (WeightFormat f : fs) m.put(f, new Gain(name, f, 1, 1));
                    } else {
                        Tensor t = src.tensor(name);
                        int rows = (int) t.rows(), cols = (int) t.cols();
                        float[] w = TensorOps.toFloats(t);
                        BlockWeights.checkFinite(src, name, w);
                        InputStats st = mc.outputStatsWithHessian().get();
                        double[] h = st.hessian();
                        Gptq.Factor fac = gptqHead ? Gptq.factor(name, h, cols, o) : null;
                        for (WeightFormat f : fs) {
                            float[] r = Grid.of(f, name, rows, cols, null).roundToNearest(w, pool);
                            Grid grid = Grid.of(f, name, rows, cols, st.importance());
                            float[] g = gptqHead ? Gptq.quantize(name, w, rows, cols, fac, o, grid, pool) : grid.roundToNearest(w, pool);
                            m.put(f, new Gain(name, f, Gptq.outputError(w, r, rows, cols, h), Gptq.outputError(w, g, rows, cols, h)));
                        }
                    }
                    out.put(name, m);
                    listener.done(out.size(), total, (System.nanoTime() - t0) / 1e9);
                }
            }
        };
        Calibrator.run(src, data, plan, List.of(probe), new Calibrator.Options(false, pool), Calibrator.Listener.NONE);
        return out;
    }
}
