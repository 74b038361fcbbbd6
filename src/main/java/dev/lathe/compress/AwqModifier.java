package dev.lathe.compress;

import dev.lathe.model.ModelConfig;

import java.util.Map;

/**
 * AWQ (Lin et al. 2023): per input channel scales {@code s = mean|x|^α} (normalised by sqrt(max·min)),
 * α searched on a grid in [0, 1) to minimise the calibration output error of the group's projections after
 * round-to-nearest in their planned formats (the error Σ‖X Wᵀ − X diag(1/s) Q(W diag(s))ᵀ‖² computed from
 * the Hessian). The chosen scales are folded so the model computes the same function: the weights'
 * columns are multiplied by s and the preceding operator divided by s — the RMSNorm weight for q/k/v and
 * gate/up, the rows of up for down, the rows of v for o (only without grouped-query attention, where v's
 * rows map one to one to o's columns). Quantization itself is left to the next modifier (RTN or GPTQ).
 */
public final class AwqModifier implements Modifier {
    private final int grid;

    /** @param grid number of α values tried: 0, 1/grid, ..., (grid-1)/grid */
    public AwqModifier(int grid) {
        if (grid < 1 || grid > 1000) throw new dev.lathe.LatheException("AWQ grid must be in [1, 1000], got " + grid);
        this.grid = grid;
    }

    @Override
    public String name() {
        return "awq";
    }

    @Override
    public int passesPerBlock() {
        return 1;
    }

    @Override
    public void applyToBlock(BlockContext ctx) {
        BlockWeights bw = ctx.weights();
        Map<Proj.Input, InputStats> st = ctx.stats(true);
        ModelConfig c = bw.config();
        float[] s;
        // first the scalings that change the rows of v and up, so the q/k/v and gate/up searches see the final weights
        if (c.nHeads() == c.nKvHeads() && bw.bv == null && (s = search(ctx, st.get(Proj.Input.ATTN_OUT), Proj.O)) != null) {
            divideRows(bw, Proj.V, s);
        }
        if ((s = search(ctx, st.get(Proj.Input.FFN_MID), Proj.DOWN)) != null) divideRows(bw, Proj.UP, s);
        if ((s = search(ctx, st.get(Proj.Input.ATTN_IN), Proj.Q, Proj.K, Proj.V)) != null) {
            for (int j = 0; j < s.length; j++) bw.attnNorm[j] /= s[j];
            bw.changedNorms();
        }
        if ((s = search(ctx, st.get(Proj.Input.FFN_IN), Proj.GATE, Proj.UP)) != null) {
            for (int j = 0; j < s.length; j++) bw.ffnNorm[j] /= s[j];
            bw.changedNorms();
        }
    }

    private static void divideRows(BlockWeights bw, Proj p, float[] s) {
        float[] w = bw.weight(p);
        int cols = bw.cols(p);
        for (int r = 0; r < s.length; r++) for (int j = 0; j < cols; j++) w[r * cols + j] /= s[r];
        bw.changed(p);
    }

    /** Finds the best scales for the projections reading {@code in}, multiplies their columns by them; null when α = 0 wins. */
    private float[] search(BlockContext ctx, InputStats in, Proj... projs) {
        BlockWeights bw = ctx.weights();
        int n = in.cols;
        double[] meanAbs = new double[n];
        for (int j = 0; j < n; j++) meanAbs[j] = in.sumAbs[j] / Math.max(1, in.tokens);
        double best = Double.POSITIVE_INFINITY;
        float[] bestS = null;
        for (int g = 0; g < grid; g++) {
            double alpha = (double) g / grid;
            float[] s = scales(meanAbs, alpha);
            double loss = 0;
            for (Proj p : projs) {
                WeightFormat f = ctx.plan().format(p.tensorName(bw.layer()));
                if (f == null) continue;
                int rows = bw.rows(p), cols = bw.cols(p);
                float[] w = bw.weight(p);
                float[] ws = new float[w.length];
                for (int r = 0; r < rows; r++) for (int j = 0; j < cols; j++) ws[r * cols + j] = w[r * cols + j] * s[j];
                float[] q = Grid.of(f, p.tensorName(bw.layer()), rows, cols, null).roundToNearest(ws, ctx.pool());
                for (int r = 0; r < rows; r++) for (int j = 0; j < cols; j++) q[r * cols + j] /= s[j];
                loss += Gptq.outputError(w, q, rows, cols, in.hessian());
            }
            if (loss < best) {
                best = loss;
                bestS = alpha == 0 ? null : s;
            }
        }
        if (bestS == null) return null;
        for (Proj p : projs) {
            float[] w = bw.weight(p);
            int rows = bw.rows(p), cols = bw.cols(p);
            for (int r = 0; r < rows; r++) for (int j = 0; j < cols; j++) w[r * cols + j] *= bestS[j];
            bw.changed(p);
        }
        return bestS;
    }

    static float[] scales(double[] meanAbs, double alpha) {
        int n = meanAbs.length;
        double[] s = new double[n];
        double max = 0, min = Double.POSITIVE_INFINITY;
        for (int j = 0; j < n; j++) {
            s[j] = Math.max(Math.pow(meanAbs[j], alpha), 1e-4);
            max = Math.max(max, s[j]);
            min = Math.min(min, s[j]);
        }
        double norm = Math.sqrt(max * min);
        float[] out = new float[n];
        for (int j = 0; j < n; j++) out[j] = (float) (s[j] / norm);
        return out;
    }
}
