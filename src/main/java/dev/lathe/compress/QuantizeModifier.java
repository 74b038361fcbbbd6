package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.model.TensorNames;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;
import dev.lathe.tensor.quant.Imatrix;

import java.util.Map;

/**
 * Quantizes every weight the {@link QuantPlan} names: round-to-nearest ({@link Method#RTN}, GGUF types
 * byte-identical to llama-quantize), importance-weighted round-to-nearest ({@link Method#IMATRIX}: the
 * codec's scale search weighted by mean x² per column, from an imatrix file or from the calibration
 * activations), or {@link Method#GPTQ} with the block's Hessians; under GPTQ a GGUF block type's scale search
 * is also weighted by the columns' importance (mean x², the Hessian's diagonal), as with IMATRIX. The token
 * embedding is always round-to-nearest. The output head: importance from the final-norm activations with
 * IMATRIX (or the file's entry, if it has one) and GPTQ; with {@link #withGptqHead} GPTQ runs on it too, with
 * the final-norm activations' Hessian (vocab × dim² work: 4 s for a 32k × 2048 head on 2 cores).
 */
public final class QuantizeModifier implements Modifier {
    public enum Method { RTN, IMATRIX, GPTQ }

    private final Method method;
    private final Gptq.Options gptq;
    private final Imatrix imatrix;
    private final String imatrixName;
    private boolean gptqHead;

    /** @param imatrix an importance matrix file for {@link Method#IMATRIX} (null: use the calibration data) */
    public QuantizeModifier(Method method, Gptq.Options gptq, Imatrix imatrix, String imatrixName) {
        this.method = method;
        this.gptq = gptq == null ? Gptq.Options.DEFAULT : gptq;
        this.imatrix = imatrix;
        this.imatrixName = imatrixName;
    }

    /** Also runs GPTQ on the output head (with the final-norm activations' Hessian). */
    public QuantizeModifier withGptqHead() {
        this.gptqHead = true;
        return this;
    }

    public static QuantizeModifier rtn() {
        return new QuantizeModifier(Method.RTN, null, null, null);
    }

    public Method method() {
        return method;
    }

    /** True when the modifier needs calibration activations. */
    public boolean needsCalibration() {
        return method == Method.GPTQ || (method == Method.IMATRIX && imatrix == null);
    }

    @Override
    public String name() {
        return method.name().toLowerCase(java.util.Locale.ROOT);
    }

    @Override
    public int passesPerBlock() {
        return 0;
    }

    @Override
    public void applyToBlock(BlockContext ctx) {
        BlockWeights bw = ctx.weights();
        Map<Proj.Input, InputStats> stats = needsCalibration() ? ctx.stats(method == Method.GPTQ) : null;
        Map<Proj.Input, Gptq.Factor> factors = new java.util.EnumMap<>(Proj.Input.class);
        for (Proj p : Proj.values()) {
            String name = p.tensorName(bw.layer());
            WeightFormat f = ctx.plan().format(name);
            if (f == null) continue;
            int rows = bw.rows(p), cols = bw.cols(p);
            float[] imp = importance(name, cols, stats == null ? null : stats.get(p.input));
            Grid grid = Grid.of(f, name, rows, cols, imp);
            float[] q;
            if (method == Method.GPTQ) {
                Gptq.Factor fac = factors.computeIfAbsent(p.input, in -> Gptq.factor(name, stats.get(in).hessian(), cols, gptq));
                q = Gptq.quantize(name, bw.weight(p), rows, cols, fac, gptq, grid, ctx.pool());
            } else {
                q = grid.roundToNearest(bw.weight(p), ctx.pool());
            }
            ctx.put(grid.result());
            bw.set(p, q);
        }
    }

    private float[] importance(String name, int cols, InputStats st) {
        if (method == Method.GPTQ) return st == null ? null : st.importance();
        if (method != Method.IMATRIX) return null;
        if (imatrix != null) {
            float[] v = imatrix.get(name);
            if (v == null) throw new LatheException(imatrixName + ": imatrix has no entry for " + name + " (made for another model?)");
            if (v.length != cols) {
                throw new LatheException(imatrixName + ": imatrix entry " + name + " has " + v.length + " values, the tensor has rows of " + cols + " (made for another model?)");
            }
            return v;
        }
        return st.importance();
    }

    @Override
    public void finish(ModelContext mc) {
        for (String name : new String[]{TensorNames.TOKEN_EMBD, TensorNames.OUTPUT}) {
            WeightFormat f = mc.plan().format(name);
            if (f == null || !mc.source().has(name)) continue;
            Tensor t = mc.source().tensor(name);
            int rows = (int) t.rows(), cols = (int) t.cols();
            float[] w = TensorOps.toFloats(t);
            BlockWeights.checkFinite(mc.source(), name, w);
            boolean head = name.equals(TensorNames.OUTPUT);
            float[] imp = null;
            if (head && method == Method.GPTQ && gptqHead) {
                imp = mc.outputStatsWithHessian().get().importance();
            } else if (head && (method == Method.IMATRIX || method == Method.GPTQ)) {
                if (imatrix != null && method == Method.IMATRIX) {
                    float[] v = imatrix.get(name);
                    if (v != null && v.length == cols) imp = v;
                } else {
                    imp = mc.outputStats().get().importance();
                }
            }
            Grid grid = Grid.of(f, name, rows, cols, imp);
            if (head && method == Method.GPTQ && gptqHead) {
                Gptq.quantize(name, w, rows, cols, mc.outputStatsWithHessian().get().hessian(), gptq, grid, dev.lathe.model.Parallel.common());
            } else {
                grid.roundToNearest(w, dev.lathe.model.Parallel.common());
            }
            mc.results().put(name, grid.result());
        }
    }
}
