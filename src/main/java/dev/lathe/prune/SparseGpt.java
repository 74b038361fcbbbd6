package dev.lathe.prune;

import dev.lathe.LatheException;
import dev.lathe.compress.Gptq;
import dev.lathe.compress.Grid;
import dev.lathe.compress.QuantizedWeight;
import dev.lathe.model.Parallel;

import java.util.Arrays;

/**
 * SparseGPT (Frantar &amp; Alistarh 2023): one-shot pruning with the layer's calibration Hessian H = XᵀX.
 * Columns are visited left to right; a pruned (or quantized) weight's error, divided by the diagonal of the
 * upper Cholesky factor U of the damped H⁻¹ (shared with GPTQ: {@link Gptq#factor}), is spread over the row's
 * not yet visited columns (the optimal-brain-surgeon update, the same for every row, so rows run in parallel).
 * Updates beyond the current block of {@code blockSize} columns are applied lazily once per block.
 * <p>
 * The mask is chosen adaptively from the partially updated weights by the OBS saliency w²/U_ii²:
 * unstructured, once per block of {@code blockSize} columns over all rows together (each block loses its
 * share of the target, so the matrix reaches it exactly: floor(sparsity · rows · cols) zeros); N:M, for each
 * group of M columns of a row when the sweep reaches it (the M−N lowest go).
 * <p>
 * Joint sparsification and quantization (the paper's section 3.5): with a {@link Grid}, every kept weight is
 * quantized onto the grid during the same sweep and a pruned one is set to the grid's value for zero; the
 * error of both is compensated. A group's grid parameters are fixed when the sweep reaches the group, from
 * the current weights with the pruning of the rest of the lazy block played ahead ({@link #predictView});
 * a GGUF block's values are fixed then too (a k-quant super-block is re-encoded per 32 columns, its earlier
 * values pinned, as in GPTQ). On symmetric grids (Q4_0, Q8_0, Q6_K, INTn) zero is exact; on grids with a
 * per-block minimum (Q4_K, Q5_K, Q4_1, ...) a pruned weight is the nearest grid value, not always 0.
 */
public final class SparseGpt {
    private SparseGpt() {}

    /**
     * @param dampPercent fraction of the mean Hessian diagonal added to the diagonal (0.01 = 1 %)
     * @param blockSize   columns per lazy-update block and per unstructured mask selection (128)
     */
    public record Options(double dampPercent, int blockSize) {
        public static final Options DEFAULT = new Options(0.01, 128);

        public Options {
            gptq(dampPercent, blockSize); // same checks as GPTQ
        }

        /** GPTQ's options with the same damping (no act-order: SparseGPT sweeps columns in their order). */
        public Gptq.Options gptq() {
            return gptq(dampPercent, blockSize);
        }

        private static Gptq.Options gptq(double damp, int bs) {
            return new Gptq.Options(damp, bs, false);
        }
    }

    /**
     * @param weights   the pruned (and, with a grid, quantized and decoded) weights
     * @param quantized the encoded matrix when a grid was given, else null
     * @param pruned    how many weights the mask removed
     */
    public record Result(float[] weights, QuantizedWeight quantized, long pruned) {}

    /** The Hessian factor (GPTQ's: dead columns, damping, U with H⁻¹ = UᵀU); shared by projections reading the same input. */
    public static Gptq.Factor factor(String name, double[] h, int cols, Options o) {
        return Gptq.factor(name, h, cols, o.gptq());
    }

    /** Prunes {@code w} ({@code [rows, cols]}, not modified) with Hessian {@code h}; {@code grid} may be null. */
    public static Result prune(String name, float[] w, int rows, int cols, double[] h, Pattern p, Options o, Grid grid, Parallel pool) {
        return prune(name, w, rows, cols, factor(name, h, cols, o), p, o, grid, pool);
    }

    /** As above with a precomputed {@link #factor}. */
    public static Result prune(String name, float[] w, int rows, int cols, Gptq.Factor f, Pattern p, Options o, Grid grid, Parallel pool) {
        if (rows < 1 || cols < 1 || (long) rows * cols != w.length) throw new IllegalArgumentException(name + ": " + w.length + " values for " + rows + "x" + cols);
        if (f.cols() != cols || f.actOrder()) throw new IllegalArgumentException(name + ": factor does not match");
        if (p.isNm() && cols % p.m() != 0) {
            throw new LatheException(name + ": N:M pattern " + p.n() + ":" + p.m() + " does not divide the row length " + cols);
        }
        for (float v : w) if (!Float.isFinite(v)) throw new LatheException(name + ": weights contain NaN or Inf");
        final float[] wk = w.clone();
        for (int c = 0; c < cols; c++) {
            if (f.dead()[c]) for (int r = 0; r < rows; r++) wk[r * cols + c] = 0;
        }
        final double[] u = f.u();
        final int gs = grid == null ? cols : grid.groupSize();
        int bs = o.blockSize();
        // a grid group must not straddle a lazy block (its parameters are fitted to up-to-date weights)
        if (grid != null && gs < cols && gs % bs != 0 && bs % gs != 0) bs = gs;
        // an N:M group must lie inside one lazy block
        if (p.isNm() && bs % p.m() != 0) bs = p.m() * Math.max(1, bs / p.m());
        final int lazy = bs;
        final boolean nm = p.isNm();
        final int m = p.m(), drop = p.m() - p.n();
        final boolean[] mask = new boolean[rows * cols];
        final float[] out = new float[rows * cols];
        final Grid.Worker[] workers = grid == null ? null : new Grid.Worker[rows];
        // a k-quant's codec block reaches up to 256 columns from a group start; an integer group up to gs
        final int span = Math.max(gs, 256);
        final double[] diag2 = new double[cols];
        for (int c = 0; c < cols; c++) {
            double d = u[c * cols + c];
            diag2[c] = d * d;
        }
        for (int i1 = 0; i1 < cols; i1 += lazy) {
            final int b1 = i1, b2 = Math.min(cols, i1 + lazy);
            if (!nm) {
                long before = (long) Math.floor(p.sparsity() * rows * (double) b1);
                long after = (long) Math.floor(p.sparsity() * rows * (double) b2);
                selectBlock(wk, mask, rows, cols, b1, b2, diag2, after - before);
            }
            pool.forRange(rows, 1, (t, from, to) -> {
                double[] err = new double[b2 - b1];
                float[] view = grid == null ? null : new float[cols];
                boolean[] taken = nm ? new boolean[m] : null;
                boolean[] pm = grid == null ? null : new boolean[cols];
                for (int r = from; r < to; r++) {
                    int ro = r * cols;
                    Grid.Worker k = null;
                    if (grid != null) {
                        k = workers[r];
                        if (k == null) k = workers[r] = grid.worker();
                    }
                    for (int i = b1; i < b2; i++) {
                        if (nm && i % m == 0) lowest(wk, ro + i, diag2, i, m, drop, mask, ro + i);
                        if (k != null && i % gs == 0) {
                            predictView(wk, mask, ro, i, Math.min(cols, i + span), b2, nm ? i - i % m + m : b2, nm, m, drop, u, cols, diag2, view, taken, pm);
                            k.begin(r, view, i);
                        }
                        float cur = wk[ro + i];
                        float q;
                        if (mask[ro + i]) q = k == null ? 0f : k.value(r, i, 0f);
                        else q = k == null ? cur : k.value(r, i, cur);
                        out[ro + i] = q;
                        int uo = i * cols;
                        double e = (cur - q) / u[uo + i];
                        err[i - b1] = e;
                        if (e != 0) for (int j = i + 1; j < b2; j++) wk[ro + j] -= (float) (e * u[uo + j]);
                    }
                    if (b2 < cols) {
                        for (int i = b1; i < b2; i++) {
                            double e = err[i - b1];
                            if (e == 0) continue;
                            int uo = i * cols;
                            for (int j = b2; j < cols; j++) wk[ro + j] -= (float) (e * u[uo + j]);
                        }
                    }
                }
            });
        }
        long pruned = 0;
        for (boolean b : mask) if (b) pruned++;
        if (grid == null) return new Result(out, null, pruned);
        QuantizedWeight qw = grid.result();
        // the stored encoding (a k-quant super-block is re-encoded per 32 columns, so earlier values may move slightly)
        return new Result(qw.dequantize(), qw, pruned);
    }

    /**
     * The weights a grid group is fitted to when the sweep reaches its first column {@code i} (for a GGUF
     * block type: the values of the whole block are fixed then): the current row from {@code i} to
     * {@code end}, with the pruning of the columns up to the lazy block's end {@code b2} played ahead, so that
     * the kept weights are rounded after the pruning updates reach them, not before. Each pruned column
     * (decided, or for N:M chosen provisionally as the sweep will) is zeroed and its OBS update applied to the
     * later columns; the kept ones are taken as unchanged (their rounding errors are small next to the pruning
     * errors and are compensated by the sweep itself). Columns from {@code b2} on are taken as they are now.
     * Measured on lathe-ref's blocks (Q4_0, Q4_K, int4-g32 at 50 %): without it the joint sweep lost to
     * prune-then-round on Q4_K; with it it wins on every projection.
     */
    static void predictView(float[] w, boolean[] mask, int ro, int i, int end, int b2, int decided, boolean nm, int m, int drop,
                            double[] u, int cols, double[] diag2, float[] view, boolean[] taken, boolean[] pm) {
        for (int j = i; j < end; j++) view[j] = w[ro + j];
        int pe = Math.min(end, b2);
        for (int j = i; j < pe; j++) pm[j] = j < decided && mask[ro + j];
        for (int j = i; j < pe; j++) {
            if (nm && j >= decided && j % m == 0 && j + m <= pe) {
                Arrays.fill(taken, false);
                lowest(view, j, diag2, j, m, drop, taken, 0);
                for (int t = 0; t < m; t++) pm[j + t] = taken[t];
            }
            if (!pm[j]) continue;
            double e = view[j] / u[j * cols + j];
            view[j] = 0f;
            if (e == 0) continue;
            int uo = j * cols;
            for (int t = j + 1; t < pe; t++) view[t] -= (float) (e * u[uo + t]);
        }
    }

    /**
     * Marks the {@code drop} weights of columns [c1, c2) (all rows) with the lowest w²/U_ii²; ties go in
     * row-major order.
     */
    static void selectBlock(float[] w, boolean[] mask, int rows, int cols, int c1, int c2, double[] diag2, long drop) {
        if (drop <= 0) return;
        int n = c2 - c1;
        double[] s = new double[rows * n];
        for (int r = 0; r < rows; r++) {
            for (int j = c1; j < c2; j++) {
                double v = w[r * cols + j];
                s[r * n + j - c1] = v * v / diag2[j];
            }
        }
        double[] sorted = s.clone();
        Arrays.sort(sorted);
        double t = sorted[(int) Math.min(drop, s.length) - 1];
        long below = 0;
        for (double v : s) if (v < t) below++;
        long ties = drop - below;
        for (int i = 0; i < s.length; i++) {
            if (s[i] < t || (s[i] == t && ties-- > 0)) mask[(i / n) * cols + c1 + i % n] = true;
        }
    }

    /**
     * Marks in {@code sel[so .. so+m)} the {@code drop} weights of {@code w[wo .. wo+m)} (columns c0..) with the
     * lowest w²/U_ii²; ties: lower column first. {@code sel} must be clear there.
     */
    static void lowest(float[] w, int wo, double[] diag2, int c0, int m, int drop, boolean[] sel, int so) {
        for (int k = 0; k < drop; k++) {
            int best = -1;
            double bs = Double.POSITIVE_INFINITY;
            for (int j = 0; j < m; j++) {
                if (sel[so + j]) continue;
                double v = w[wo + j];
                double s = v * v / diag2[c0 + j];
                if (best < 0 || s < bs) {
                    bs = s;
                    best = j;
                }
            }
            sel[so + best] = true;
        }
    }
}
