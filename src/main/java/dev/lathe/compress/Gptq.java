package dev.lathe.compress;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

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
        // the updates past the current lazy block are the bulk of the work (rows x cols^2 / 2): they run on a float
        // copy of U, for ROWS rows at a time, so that each load of U serves them all
        float[] uf = new float[cols * cols];
        for (int i = 0; i < cols; i++) for (int j = i; j < cols; j++) uf[i * cols + j] = (float) u[i * cols + j];
        final int groups = (rows + ROWS - 1) / ROWS;
        pool.forRange(groups, 1, (t, gFrom, gTo) -> {
            Grid.Worker[] ks = new Grid.Worker[ROWS];
            for (int q = 0; q < ROWS; q++) ks[q] = grid.worker();
            float[][] rowBuf = new float[ROWS][cols];
            float[] orig = new float[cols];
            double[][] err = new double[ROWS][lazy];
            float[] ef = new float[ROWS];
            for (int gi = gFrom; gi < gTo; gi++) {
                int r0 = gi * ROWS, g = Math.min(ROWS, rows - r0);
                for (int q = 0; q < g; q++) {
                    int r = r0 + q;
                    float[] row = rowBuf[q];
                    for (int i = 0; i < cols; i++) row[i] = wq[r * cols + perm[i]];
                    if (act) {
                        for (int i = 0; i < cols; i++) orig[perm[i]] = row[i];
                        for (int c = 0; c < cols; c += gs) ks[q].begin(r, orig, c);
                    }
                }
                for (int i1 = 0; i1 < cols; i1 += lazy) {
                    int i2 = Math.min(cols, i1 + lazy);
                    // within the lazy block, column by column, each row on its own
                    for (int q = 0; q < g; q++) {
                        int r = r0 + q;
                        float[] row = rowBuf[q];
                        Grid.Worker k = ks[q];
                        double[] er = err[q];
                        for (int i = i1; i < i2; i++) {
                            int col = perm[i];
                            if (!act && col % gs == 0) k.begin(r, row, col);
                            float qv = k.value(r, col, row[i]);
                            out[r * cols + col] = qv;
                            double e = (row[i] - qv) / u[i * cols + i];
                            er[i - i1] = e;
                            int uo = i * cols;
                            for (int j = i + 1; j < i2; j++) row[j] -= (float) (e * u[uo + j]);
                        }
                    }
                    if (i2 < cols) lazyUpdate(rowBuf, err, ef, g, uf, cols, i1, i2);
                }
            }
        });
        // the stored encoding (a k-quant super-block is re-encoded per 32 columns, so earlier values may move slightly)
        return grid instanceof Grid.Codec ? grid.result().dequantize() : out;
    }

    /**
     * Damps {@code h} (in place), then returns U (upper triangular, row-major) with {@code H⁻¹ = UᵀU}.
     * When H is not positive definite the damping is raised tenfold up to four times; then a clear error.
     * <p>
     * Computed as U = J L⁻¹ J with L the lower Cholesky factor of J H J (J reverses the order of rows and
     * columns): then UᵀU = J L⁻ᵀ L⁻¹ J = (J L Lᵀ J)⁻¹ = H⁻¹. One factorization and one triangular inverse
     * (n³/2 multiply-adds) instead of the usual factorize, invert, factorize again (7n³/6), both blocked,
     * vectorized and spread over the threads: GPTQ's cost on large layers (n = 5632 for a 1B model's
     * ffn_down) is dominated by this step.
     */
    public static double[] upperCholeskyOfInverse(String name, double[] h, int n, double damp) {
        double mean = 0;
        for (int i = 0; i < n; i++) mean += h[i * n + i];
        mean /= n;
        double d = Math.max(damp, 0) * mean;
        Parallel pool = Parallel.common();
        for (int attempt = 0; attempt < 5; attempt++) {
            double[] a = new double[n * n];
            for (int i = 0; i < n; i++) {
                int ri = n - 1 - i;
                for (int j = 0; j <= i; j++) a[i * n + j] = h[ri * n + (n - 1 - j)];
                a[i * n + i] += d;
            }
            if (choleskyInPlace(a, n, pool)) {
                double[] x = lowerInverse(a, n, pool);
                double[] u = a; // reuse: U = J X J
                java.util.Arrays.fill(u, 0);
                for (int i = 0; i < n; i++) {
                    int ri = n - 1 - i;
                    for (int j = i; j < n; j++) u[i * n + j] = x[ri * n + (n - 1 - j)];
                }
                boolean finite = true;
                for (int i = 0; i < n && finite; i++) finite = Double.isFinite(u[i * n + i]);
                if (finite) return u;
            }
            d = d == 0 ? 1e-6 * Math.max(mean, 1e-12) : d * 10;
        }
        throw new LatheException(name + ": the Hessian is singular even with damping " + String.format(java.util.Locale.ROOT, "%.3g", d / 10)
                + " (too few or degenerate calibration tokens?)");
    }

    private static final VectorSpecies<Double> DS = DoubleVector.SPECIES_PREFERRED;
    /** Panel width of the blocked factorization. */
    private static final int NB = 64;

    /**
     * Overwrites the lower triangle of {@code a} with its Cholesky factor L (the strict upper triangle is left
     * alone and never read); false if a is not positive definite. Left-looking by panels of {@value #NB}
     * columns: each panel is first updated with the rows already factored (dot products along rows, four
     * at a time, over the threads), then its diagonal block is factored and the rows below solved against it.
     */
    static boolean choleskyInPlace(double[] a, int n, Parallel pool) {
        for (int j0 = 0; j0 < n; j0 += NB) {
            final int p0 = j0, jb = Math.min(NB, n - j0);
            // 1. A[i, p0..p0+jb) -= L[i, 0..p0) . L[j, 0..p0) for rows i >= p0 (j <= i)
            if (p0 > 0) {
                pool.forRange(n - p0, 8, (w, from, to) -> {
                    int i = p0 + from;
                    // two rows at a time where both need the whole panel (below the diagonal block)
                    for (; i + 2 <= p0 + to && i >= p0 + jb; i += 2) {
                        int io = i * n, io2 = io + n;
                        for (int j = p0; j < p0 + jb; j += 4) {
                            if (j + 4 <= p0 + jb) dot8Sub(a, io, io2, j * n, (j + 1) * n, (j + 2) * n, (j + 3) * n, p0, j);
                            else for (int jj = j; jj < p0 + jb; jj++) {
                                a[io + jj] -= dotRange(a, io, jj * n, p0);
                                a[io2 + jj] -= dotRange(a, io2, jj * n, p0);
                            }
                        }
                    }
                    for (; i < p0 + to; i++) {
                        int io = i * n, jEnd = Math.min(p0 + jb, i + 1);
                        int j = p0;
                        for (; j + 4 <= jEnd; j += 4) dot4Sub(a, io, j * n, (j + 1) * n, (j + 2) * n, (j + 3) * n, p0, io + j);
                        for (; j < jEnd; j++) a[io + j] -= dotRange(a, io, j * n, p0);
                    }
                });
            }
            // 2. the diagonal block, sequentially (jb^3 / 3)
            for (int j = p0; j < p0 + jb; j++) {
                int jo = j * n;
                double s = a[jo + j] - dotRange(a, jo + p0, jo + p0, j - p0);
                if (!(s > 0) || !Double.isFinite(s)) return false;
                double ljj = Math.sqrt(s);
                a[jo + j] = ljj;
                for (int i = j + 1; i < p0 + jb; i++) {
                    int io = i * n;
                    a[io + j] = (a[io + j] - dotRange(a, io + p0, jo + p0, j - p0)) / ljj;
                }
            }
            // 3. the rows below the block: L[i, j] = (A[i, j] - L[i, p0..j) . L[j, p0..j)) / L[j, j]
            if (p0 + jb < n) {
                pool.forRange(n - p0 - jb, 16, (w, from, to) -> {
                    for (int i = p0 + jb + from; i < p0 + jb + to; i++) {
                        int io = i * n;
                        for (int j = p0; j < p0 + jb; j++) {
                            int jo = j * n;
                            a[io + j] = (a[io + j] - dotRange(a, io + p0, jo + p0, j - p0)) / a[jo + j];
                        }
                    }
                });
            }
        }
        return true;
    }

    /** L⁻¹ of the lower factor in the lower triangle of {@code l}, as a new lower-triangular matrix; columns in blocks over the threads. */
    static double[] lowerInverse(double[] l, int n, Parallel pool) {
        double[] x = new double[n * n];
        final int lanes = DS.length();
        final int cb = 4 * lanes; // four vector accumulators per row of a column block
        int blocks = (n + cb - 1) / cb;
        // heavy (left) and light (right) column blocks interleaved so that every chunk of work weighs about the same
        int[] order = new int[blocks];
        for (int k = 0, lo = 0, hi = blocks - 1; k < blocks; k++) order[k] = (k & 1) == 0 ? lo++ : hi--;
        pool.forRange(blocks, 1, (w, from, to) -> {
            for (int t = from; t < to; t++) {
                int c0 = order[t] * cb, c1 = Math.min(n, c0 + cb), width = c1 - c0;
                int i = c0;
                if (width == cb) {
                    // four rows at a time: each load of X[k, block] serves four rows (the kernel is bound by these loads)
                    for (; i + 4 <= n; i += 4) {
                        int o0 = i * n, o1 = o0 + n, o2 = o1 + n, o3 = o2 + n;
                        DoubleVector z = DoubleVector.zero(DS);
                        DoubleVector a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
                        DoubleVector e0 = z, e1 = z, e2 = z, e3 = z, f0 = z, f1 = z, f2 = z, f3 = z;
                        for (int k = c0; k < i; k++) {
                            int ko = k * n + c0;
                            DoubleVector x0 = DoubleVector.fromArray(DS, x, ko), x1 = DoubleVector.fromArray(DS, x, ko + lanes);
                            DoubleVector x2 = DoubleVector.fromArray(DS, x, ko + 2 * lanes), x3 = DoubleVector.fromArray(DS, x, ko + 3 * lanes);
                            DoubleVector l0 = DoubleVector.broadcast(DS, l[o0 + k]), l1 = DoubleVector.broadcast(DS, l[o1 + k]);
                            DoubleVector l2 = DoubleVector.broadcast(DS, l[o2 + k]), l3 = DoubleVector.broadcast(DS, l[o3 + k]);
                            a0 = x0.fma(l0, a0); a1 = x1.fma(l0, a1); a2 = x2.fma(l0, a2); a3 = x3.fma(l0, a3);
                            b0 = x0.fma(l1, b0); b1 = x1.fma(l1, b1); b2 = x2.fma(l1, b2); b3 = x3.fma(l1, b3);
                            e0 = x0.fma(l2, e0); e1 = x1.fma(l2, e1); e2 = x2.fma(l2, e2); e3 = x3.fma(l2, e3);
                            f0 = x0.fma(l3, f0); f1 = x1.fma(l3, f1); f2 = x2.fma(l3, f2); f3 = x3.fma(l3, f3);
                        }
                        int p0 = o0 + c0, p1 = o1 + c0, p2 = o2 + c0, p3 = o3 + c0;
                        a0.intoArray(x, p0); a1.intoArray(x, p0 + lanes); a2.intoArray(x, p0 + 2 * lanes); a3.intoArray(x, p0 + 3 * lanes);
                        b0.intoArray(x, p1); b1.intoArray(x, p1 + lanes); b2.intoArray(x, p1 + 2 * lanes); b3.intoArray(x, p1 + 3 * lanes);
                        e0.intoArray(x, p2); e1.intoArray(x, p2 + lanes); e2.intoArray(x, p2 + 2 * lanes); e3.intoArray(x, p2 + 3 * lanes);
                        f0.intoArray(x, p3); f1.intoArray(x, p3 + lanes); f2.intoArray(x, p3 + 2 * lanes); f3.intoArray(x, p3 + 3 * lanes);
                        // the terms k = i .. i+2 within the group, then each row finished in order
                        for (int r = 0; r < 4; r++) {
                            int row = i + r, ro = row * n;
                            for (int q = 0; q < r; q++) {
                                double lq = l[ro + i + q];
                                int qo = (i + q) * n + c0;
                                for (int c = 0; c < width; c++) x[ro + c0 + c] += lq * x[qo + c];
                            }
                            finishRow(x, l, ro, row, c0, width);
                        }
                    }
                }
                for (; i < n; i++) {
                    int io = i * n;
                    for (int k = c0; k < i; k++) {
                        double lik = l[io + k];
                        int ko = k * n + c0;
                        for (int c = 0; c < width; c++) x[io + c0 + c] += lik * x[ko + c];
                    }
                    finishRow(x, l, io, i, c0, width);
                }
            }
        });
        return x;
    }

    /** X[i, c0..c0+width) = (I - accumulated sum) / L[i, i]; zero right of the diagonal. */
    private static void finishRow(double[] x, double[] l, int io, int i, int c0, int width) {
        double inv = 1.0 / l[io + i];
        for (int c = 0; c < width; c++) {
            int cc = c0 + c;
            x[io + cc] = cc > i ? 0 : ((cc == i ? 1.0 : 0.0) - x[io + cc]) * inv;
        }
    }

    /** sum_{k < len} a[ia + k] * a[ib + k] */
    private static double dotRange(double[] a, int ia, int ib, int len) {
        int k = 0;
        double s = 0;
        if (len >= DS.length()) {
            DoubleVector acc = DoubleVector.zero(DS);
            for (; k + DS.length() <= len; k += DS.length()) {
                acc = DoubleVector.fromArray(DS, a, ia + k).fma(DoubleVector.fromArray(DS, a, ib + k), acc);
            }
            s = sumLanes(acc);
        }
        for (; k < len; k++) s += a[ia + k] * a[ib + k];
        return s;
    }

    /** a[out + 0..3] -= row i . rows j0..j3, each over [0, len). */
    private static void dot4Sub(double[] a, int io, int j0, int j1, int j2, int j3, int len, int out) {
        DoubleVector s0 = DoubleVector.zero(DS), s1 = s0, s2 = s0, s3 = s0;
        int k = 0;
        for (; k + DS.length() <= len; k += DS.length()) {
            DoubleVector x = DoubleVector.fromArray(DS, a, io + k);
            s0 = x.fma(DoubleVector.fromArray(DS, a, j0 + k), s0);
            s1 = x.fma(DoubleVector.fromArray(DS, a, j1 + k), s1);
            s2 = x.fma(DoubleVector.fromArray(DS, a, j2 + k), s2);
            s3 = x.fma(DoubleVector.fromArray(DS, a, j3 + k), s3);
        }
        double t0 = sumLanes(s0), t1 = sumLanes(s1), t2 = sumLanes(s2), t3 = sumLanes(s3);
        for (; k < len; k++) {
            double x = a[io + k];
            t0 += x * a[j0 + k];
            t1 += x * a[j1 + k];
            t2 += x * a[j2 + k];
            t3 += x * a[j3 + k];
        }
        a[out] -= t0;
        a[out + 1] -= t1;
        a[out + 2] -= t2;
        a[out + 3] -= t3;
    }

    /** a[ia + j + 0..3] and a[ib + j + 0..3] -= rows ia, ib . rows j0..j3, each over [0, len): a 2 x 4 register tile. */
    private static void dot8Sub(double[] a, int ia, int ib, int j0, int j1, int j2, int j3, int len, int j) {
        DoubleVector s0 = DoubleVector.zero(DS), s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;
        int k = 0;
        for (; k + DS.length() <= len; k += DS.length()) {
            DoubleVector x = DoubleVector.fromArray(DS, a, ia + k), y = DoubleVector.fromArray(DS, a, ib + k);
            DoubleVector r0 = DoubleVector.fromArray(DS, a, j0 + k), r1 = DoubleVector.fromArray(DS, a, j1 + k);
            DoubleVector r2 = DoubleVector.fromArray(DS, a, j2 + k), r3 = DoubleVector.fromArray(DS, a, j3 + k);
            s0 = x.fma(r0, s0);
            s1 = x.fma(r1, s1);
            s2 = x.fma(r2, s2);
            s3 = x.fma(r3, s3);
            t0 = y.fma(r0, t0);
            t1 = y.fma(r1, t1);
            t2 = y.fma(r2, t2);
            t3 = y.fma(r3, t3);
        }
        double[] u = {sumLanes(s0), sumLanes(s1), sumLanes(s2), sumLanes(s3)}, v = {sumLanes(t0), sumLanes(t1), sumLanes(t2), sumLanes(t3)};
        int[] jr = {j0, j1, j2, j3};
        for (; k < len; k++) {
            for (int q = 0; q < 4; q++) {
                u[q] += a[ia + k] * a[jr[q] + k];
                v[q] += a[ib + k] * a[jr[q] + k];
            }
        }
        for (int q = 0; q < 4; q++) {
            a[ia + j + q] -= u[q];
            a[ib + j + q] -= v[q];
        }
    }

    /** Rows of a weight matrix that GPTQ updates together (each load of U serves this many rows). */
    static final int ROWS = 8;
    private static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;

    /** rows[q][j] -= sum_{i in [i1, i2)} err[q][i - i1] * U[i, j] for j in [i2, cols), q < g. */
    private static void lazyUpdate(float[][] rows, double[][] err, float[] ef, int g, float[] uf, int cols, int i1, int i2) {
        int lanes = FS.length();
        for (int i = i1; i < i2; i++) {
            int uo = i * cols;
            for (int q = 0; q < g; q++) ef[q] = (float) -err[q][i - i1];
            int j = i2;
            if (g == ROWS) {
                FloatVector e0 = FloatVector.broadcast(FS, ef[0]), e1 = FloatVector.broadcast(FS, ef[1]), e2 = FloatVector.broadcast(FS, ef[2]),
                        e3 = FloatVector.broadcast(FS, ef[3]), e4 = FloatVector.broadcast(FS, ef[4]), e5 = FloatVector.broadcast(FS, ef[5]),
                        e6 = FloatVector.broadcast(FS, ef[6]), e7 = FloatVector.broadcast(FS, ef[7]);
                float[] w0 = rows[0], w1 = rows[1], w2 = rows[2], w3 = rows[3], w4 = rows[4], w5 = rows[5], w6 = rows[6], w7 = rows[7];
                for (; j + lanes <= cols; j += lanes) {
                    FloatVector uv = FloatVector.fromArray(FS, uf, uo + j);
                    uv.fma(e0, FloatVector.fromArray(FS, w0, j)).intoArray(w0, j);
                    uv.fma(e1, FloatVector.fromArray(FS, w1, j)).intoArray(w1, j);
                    uv.fma(e2, FloatVector.fromArray(FS, w2, j)).intoArray(w2, j);
                    uv.fma(e3, FloatVector.fromArray(FS, w3, j)).intoArray(w3, j);
                    uv.fma(e4, FloatVector.fromArray(FS, w4, j)).intoArray(w4, j);
                    uv.fma(e5, FloatVector.fromArray(FS, w5, j)).intoArray(w5, j);
                    uv.fma(e6, FloatVector.fromArray(FS, w6, j)).intoArray(w6, j);
                    uv.fma(e7, FloatVector.fromArray(FS, w7, j)).intoArray(w7, j);
                }
            }
            for (; j < cols; j++) {
                float uv = uf[uo + j];
                for (int q = 0; q < g; q++) rows[q][j] = Math.fma(uv, ef[q], rows[q][j]);
            }
        }
    }

    /** Lanes summed in a fixed order (reduceLanes may change its order once compiled; results must not). */
    private static double sumLanes(DoubleVector v) {
        double s = 0;
        for (int i = 0; i < DS.length(); i++) s += v.lane(i);
        return s;
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
