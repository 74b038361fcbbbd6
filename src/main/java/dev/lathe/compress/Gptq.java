package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.model.Parallel;

/**
 * GPTQ (Frantar et al. 2022) for any {@link Grid}: columns are quantized left to right (or by decreasing
 * Hessian diagonal with act-order), each column's rounding error divided by the diagonal of the upper
 * Cholesky factor of the damped inverse Hessian is spread over the not yet quantized columns; updates
 * beyond the current block of {@code blockSize} columns are applied lazily once per block. A group's
 * parameters are fixed when its first column is reached, from the error-compensated weights (for GGUF
 * block types: the block is encoded by the codec at that moment).
 */
public final class Gptq {
    private Gptq() {}

    /**
     * @param dampPercent  fraction of the mean Hessian diagonal added to the diagonal (0.01 = 1 %)
     * @param blockSize    columns per lazy-update block (128)
     * @param actOrder     process columns by decreasing H diagonal (integer formats only; group parameters
     *                     are then computed from the original weights, "static groups")
     */
    public record Options(double dampPercent, int blockSize, boolean actOrder) {
        public static final Options DEFAULT = new Options(0.01, 128, false);

        public Options {
            if (!(dampPercent >= 0) || dampPercent > 10) throw new LatheException("GPTQ damping must be in [0, 10], got " + dampPercent);
            if (blockSize < 1) throw new LatheException("GPTQ block size must be >= 1, got " + blockSize);
        }
    }

    /**
     * The part of GPTQ that depends only on the Hessian (shared by projections reading the same input):
     * the column order, dead columns (zero diagonal), and U with damped H⁻¹ = UᵀU in that order.
     */
    public record Factor(int cols, int[] perm, boolean[] dead, double[] u, boolean actOrder) {}

    public static Factor factor(String name, double[] h, int cols, Options o) {
        if (h.length != (long) cols * cols) throw new IllegalArgumentException(name + ": Hessian size");
        double[] hh = h.clone();
        boolean[] dead = new boolean[cols];
        for (int i = 0; i < cols; i++) {
            if (hh[i * cols + i] == 0) {
                hh[i * cols + i] = 1;
                dead[i] = true;
            }
        }
        int[] perm = new int[cols];
        for (int i = 0; i < cols; i++) perm[i] = i;
        if (o.actOrder()) {
            Integer[] idx = new Integer[cols];
            for (int i = 0; i < cols; i++) idx[i] = i;
            final double[] hd = hh;
            java.util.Arrays.sort(idx, (a, b) -> Double.compare(hd[b * cols + b], hd[a * cols + a]));
            for (int i = 0; i < cols; i++) perm[i] = idx[i];
            double[] p = new double[cols * cols];
            for (int i = 0; i < cols; i++) for (int j = 0; j < cols; j++) p[i * cols + j] = hh[perm[i] * cols + perm[j]];
            hh = p;
        }
        return new Factor(cols, perm, dead, upperCholeskyOfInverse(name, hh, cols, o.dampPercent()), o.actOrder());
    }

    /**
     * Quantizes {@code w} ({@code [rows, cols]}, not modified) with Hessian {@code h} ({@code cols × cols},
     * not modified) into {@code grid}; returns the decoded quantized weights.
     */
    public static float[] quantize(String name, float[] w, int rows, int cols, double[] h, Options o, Grid grid, Parallel pool) {
        return quantize(name, w, rows, cols, factor(name, h, cols, o), o, grid, pool);
    }

    /** As above with a precomputed {@link #factor}. */
    public static float[] quantize(String name, float[] w, int rows, int cols, Factor f, Options o, Grid grid, Parallel pool) {
        if (f.cols() != cols || f.actOrder() != o.actOrder()) throw new IllegalArgumentException(name + ": factor does not match");
        int gs = grid.groupSize();
        boolean act = o.actOrder();
        if (act && grid instanceof Grid.Codec) {
            throw new LatheException(name + ": act-order needs a per-column grid (integer formats); GGUF block types quantize contiguous blocks");
        }
        float[] wq = w.clone();
        for (int i = 0; i < cols; i++) {
            if (f.dead()[i]) for (int r = 0; r < rows; r++) wq[r * cols + i] = 0;
        }
        int[] perm = f.perm();
        double[] u = f.u();
        int bs = o.blockSize();
        if (!act && gs < cols && gs % bs != 0 && bs % gs != 0) bs = gs;
        final int lazy = bs;
        float[] out = new float[rows * cols];
        pool.forRange(rows, 1, (t, from, to) -> {
            Grid.Worker k = grid.worker();
            float[] row = new float[cols];
            float[] orig = new float[cols];
            double[] err = new double[lazy];
            for (int r = from; r < to; r++) {
                for (int i = 0; i < cols; i++) row[i] = wq[r * cols + perm[i]];
                if (act) {
                    for (int i = 0; i < cols; i++) orig[perm[i]] = row[i];
                    for (int c = 0; c < cols; c += gs) k.begin(r, orig, c);
                }
                for (int i1 = 0; i1 < cols; i1 += lazy) {
                    int i2 = Math.min(cols, i1 + lazy);
                    for (int i = i1; i < i2; i++) {
                        int col = perm[i];
                        if (!act && col % gs == 0) k.begin(r, row, col);
                        float q = k.value(r, col, row[i]);
                        out[r * cols + col] = q;
                        double e = (row[i] - q) / u[i * cols + i];
                        err[i - i1] = e;
                        int uo = i * cols;
                        for (int j = i + 1; j < i2; j++) row[j] -= (float) (e * u[uo + j]);
                    }
                    if (i2 < cols) {
                        for (int i = i1; i < i2; i++) {
                            double e = err[i - i1];
                            if (e == 0) continue;
                            int uo = i * cols;
                            for (int j = i2; j < cols; j++) row[j] -= (float) (e * u[uo + j]);
                        }
                    }
                }
            }
        });
        // the stored encoding (a k-quant super-block is re-encoded per 32 columns, so earlier values may move slightly)
        return grid instanceof Grid.Codec ? grid.result().dequantize() : out;
    }

    /**
     * Damps {@code h} (in place), then returns U (upper triangular, row-major) with {@code H⁻¹ = UᵀU}.
     * When H is not positive definite the damping is raised tenfold up to four times; then a clear error.
     */
    public static double[] upperCholeskyOfInverse(String name, double[] h, int n, double damp) {
        double mean = 0;
        for (int i = 0; i < n; i++) mean += h[i * n + i];
        mean /= n;
        double d = Math.max(damp, 0) * mean;
        for (int attempt = 0; attempt < 5; attempt++) {
            double[] a = h.clone();
            for (int i = 0; i < n; i++) a[i * n + i] += d;
            double[] l = cholesky(a, n);
            if (l != null) {
                double[] inv = inverseFromCholesky(l, n);
                double[] l2 = cholesky(inv, n);
                if (l2 != null) {
                    double[] uu = new double[n * n];
                    for (int i = 0; i < n; i++) for (int j = i; j < n; j++) uu[i * n + j] = l2[j * n + i];
                    return uu;
                }
            }
            d = d == 0 ? 1e-6 * Math.max(mean, 1e-12) : d * 10;
        }
        throw new LatheException(name + ": the Hessian is singular even with damping " + String.format(java.util.Locale.ROOT, "%.3g", d / 10)
                + " (too few or degenerate calibration tokens?)");
    }

    /** Lower Cholesky factor of the symmetric matrix a, or null if it is not positive definite. */
    static double[] cholesky(double[] a, int n) {
        double[] l = new double[n * n];
        for (int j = 0; j < n; j++) {
            double s = a[j * n + j];
            int jo = j * n;
            for (int k = 0; k < j; k++) s -= l[jo + k] * l[jo + k];
            if (!(s > 0) || !Double.isFinite(s)) return null;
            double ljj = Math.sqrt(s);
            l[jo + j] = ljj;
            for (int i = j + 1; i < n; i++) {
                int io = i * n;
                double t = a[io + j];
                for (int k = 0; k < j; k++) t -= l[io + k] * l[jo + k];
                l[io + j] = t / ljj;
            }
        }
        return l;
    }

    /** (L Lᵀ)⁻¹ from the lower factor L. */
    static double[] inverseFromCholesky(double[] l, int n) {
        // Linv: lower triangular inverse
        double[] li = new double[n * n];
        for (int i = 0; i < n; i++) {
            li[i * n + i] = 1.0 / l[i * n + i];
            for (int j = 0; j < i; j++) {
                double s = 0;
                for (int k = j; k < i; k++) s += l[i * n + k] * li[k * n + j];
                li[i * n + j] = -s / l[i * n + i];
            }
        }
        // inv = Linvᵀ Linv, from the transpose so that both operands are read along rows
        double[] t = new double[n * n];
        for (int i = 0; i < n; i++) for (int k = 0; k <= i; k++) t[k * n + i] = li[i * n + k];
        double[] inv = new double[n * n];
        for (int i = 0; i < n; i++) {
            int io = i * n;
            for (int j = i; j < n; j++) {
                int jo = j * n;
                double s = 0;
                for (int k = j; k < n; k++) s += t[io + k] * t[jo + k];
                inv[io + j] = s;
                inv[jo + i] = s;
            }
        }
        return inv;
    }

    /** ‖X Wᵀ − X Ŵᵀ‖² = Σ_rows d H dᵀ with d = W − Ŵ: the layer-output error on the calibration data. */
    public static double outputError(float[] w, float[] wq, int rows, int cols, double[] h) {
        double total = 0;
        double[] d = new double[cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) d[c] = w[r * cols + c] - wq[r * cols + c];
            for (int i = 0; i < cols; i++) {
                if (d[i] == 0) continue;
                double s = 0;
                int io = i * cols;
                for (int j = 0; j < cols; j++) s += h[io + j] * d[j];
                total += d[i] * s;
            }
        }
        return total;
    }
}
