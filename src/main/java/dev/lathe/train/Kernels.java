package dev.lathe.train;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * F32 kernels for training: one register-blocked (4 rows × 4 vectors), cache-blocked (reduction blocks of
 * 256) matrix product {@code C = A·B}, parallel over output tiles, plus the vector helpers used by attention
 * and the element-wise operations. Products with a transposed operand transpose it first
 * ({@link #transpose}, linear in the operand's size).
 */
public final class Kernels {
    private Kernels() {}

    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();

    /** Rows of C per task, columns of C per task, reduction block. */
    private static final int TILE_M = 64, TILE_N = 128, KC = 256;

    /**
     * C[M,N] (row stride ldc) = (or +=, when accumulate) A[M,K] · B[K,N]; A has row stride K, B row stride N.
     * Parallel over tiles of C. Every element is the chain c ← fma(a[i,k], b[k,j], c) for k = 0..K-1 in
     * order (starting from 0, or from C when accumulating), whatever the path, tile or thread count, so the
     * result is exactly reproducible.
     */
    public static void nn(Parallel par, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, int ldc,
                          int m, int n, int k, boolean accumulate) {
        int tm = (m + TILE_M - 1) / TILE_M, tn = (n + TILE_N - 1) / TILE_N;
        par.forEach(tm * tn, task -> {
            int i0 = (task / tn) * TILE_M, j0 = (task % tn) * TILE_N;
            nnTile(a, aOff, k, 1, b, bOff, c, cOff, ldc, i0, Math.min(m, i0 + TILE_M), j0, Math.min(n, j0 + TILE_N), n, k, accumulate);
        });
    }

    /**
     * C[M,N] (=, or +=) Aᵀ·B where {@code a} holds A as [K, M] row-major (so C = aᵀ·b; e.g. a weight gradient
     * dyᵀ·x without transposing dy). Same fma chain and reproducibility as {@link #nn}.
     */
    public static void tn(Parallel par, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, int ldc,
                          int m, int n, int k, boolean accumulate) {
        int tm = (m + TILE_M - 1) / TILE_M, tn = (n + TILE_N - 1) / TILE_N;
        par.forEach(tm * tn, task -> {
            int i0 = (task / tn) * TILE_M, j0 = (task % tn) * TILE_N;
            nnTile(a, aOff, 1, m, b, bOff, c, cOff, ldc, i0, Math.min(m, i0 + TILE_M), j0, Math.min(n, j0 + TILE_N), n, k, accumulate);
        });
    }

    /**
     * Serial A·B over rows [i0,i1) and columns [j0,j1) of C; A(i,p) = a[aOff + i·ars + p·acs]; ldb is B's row
     * stride (= N).
     */
    static void nnTile(float[] a, int aOff, int ars, int acs, float[] b, int bOff, float[] c, int cOff, int ldc,
                       int i0, int i1, int j0, int j1, int ldb, int k, boolean acc) {
        int width = j1 - j0;
        int jv4 = j0 + width - width % (4 * L);
        int jv1 = j0 + width - width % L;
        for (int k0 = 0; k0 < k; k0 += KC) {
            int k1 = Math.min(k, k0 + KC);
            boolean load = acc || k0 > 0;
            int i = i0;
            for (; i + 4 <= i1; i += 4) {
                int a0 = aOff + i * ars, a1 = a0 + ars, a2 = a1 + ars, a3 = a2 + ars;
                int r0 = cOff + i * ldc, r1 = r0 + ldc, r2 = r1 + ldc, r3 = r2 + ldc;
                for (int j = j0; j < jv4; j += 4 * L) micro4x4(a, a0, ars, acs, b, bOff + j, ldb, c, r0 + j, ldc, k0, k1, load);
                for (int j = jv4; j < jv1; j += L) {
                    FloatVector c0, c1, c2, c3;
                    if (load) {
                        c0 = FloatVector.fromArray(S, c, r0 + j); c1 = FloatVector.fromArray(S, c, r1 + j);
                        c2 = FloatVector.fromArray(S, c, r2 + j); c3 = FloatVector.fromArray(S, c, r3 + j);
                    } else {
                        c0 = FloatVector.zero(S); c1 = c0; c2 = c0; c3 = c0;
                    }
                    for (int p = k0; p < k1; p++) {
                        FloatVector y = FloatVector.fromArray(S, b, bOff + p * ldb + j);
                        int ap = p * acs;
                        c0 = FloatVector.broadcast(S, a[a0 + ap]).fma(y, c0);
                        c1 = FloatVector.broadcast(S, a[a1 + ap]).fma(y, c1);
                        c2 = FloatVector.broadcast(S, a[a2 + ap]).fma(y, c2);
                        c3 = FloatVector.broadcast(S, a[a3 + ap]).fma(y, c3);
                    }
                    c0.intoArray(c, r0 + j); c1.intoArray(c, r1 + j); c2.intoArray(c, r2 + j); c3.intoArray(c, r3 + j);
                }
                for (int u = 0; u < 4; u++) scalarRow(a, aOff + (i + u) * ars, acs, b, bOff, ldb, c, cOff + (i + u) * ldc, jv1, j1, k0, k1, load);
            }
            for (; i < i1; i++) {
                int ai = aOff + i * ars, ri = cOff + i * ldc;
                for (int j = j0; j < jv1; j += L) {
                    FloatVector c0 = load ? FloatVector.fromArray(S, c, ri + j) : FloatVector.zero(S);
                    for (int p = k0; p < k1; p++) c0 = FloatVector.broadcast(S, a[ai + p * acs]).fma(FloatVector.fromArray(S, b, bOff + p * ldb + j), c0);
                    c0.intoArray(c, ri + j);
                }
                scalarRow(a, ai, acs, b, bOff, ldb, c, ri, jv1, j1, k0, k1, load);
            }
        }
    }

    /** C[4 rows, 4 vectors] at c[ci..] (row stride ldc) over k in [k0,k1): A(r,p) = a[ai + r·ars + p·acs], B rows b[bj + p·ldb]. */
    private static void micro4x4(float[] a, int ai, int ars, int acs, float[] b, int bj, int ldb, float[] c, int ci, int ldc,
                                 int k0, int k1, boolean load) {
        int a0 = ai, a1 = a0 + ars, a2 = a1 + ars, a3 = a2 + ars;
        int r0 = ci, r1 = r0 + ldc, r2 = r1 + ldc, r3 = r2 + ldc;
        FloatVector c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
        if (load) {
            c00 = FloatVector.fromArray(S, c, r0); c01 = FloatVector.fromArray(S, c, r0 + L);
            c02 = FloatVector.fromArray(S, c, r0 + 2 * L); c03 = FloatVector.fromArray(S, c, r0 + 3 * L);
            c10 = FloatVector.fromArray(S, c, r1); c11 = FloatVector.fromArray(S, c, r1 + L);
            c12 = FloatVector.fromArray(S, c, r1 + 2 * L); c13 = FloatVector.fromArray(S, c, r1 + 3 * L);
            c20 = FloatVector.fromArray(S, c, r2); c21 = FloatVector.fromArray(S, c, r2 + L);
            c22 = FloatVector.fromArray(S, c, r2 + 2 * L); c23 = FloatVector.fromArray(S, c, r2 + 3 * L);
            c30 = FloatVector.fromArray(S, c, r3); c31 = FloatVector.fromArray(S, c, r3 + L);
            c32 = FloatVector.fromArray(S, c, r3 + 2 * L); c33 = FloatVector.fromArray(S, c, r3 + 3 * L);
        } else {
            c00 = FloatVector.zero(S); c01 = c00; c02 = c00; c03 = c00; c10 = c00; c11 = c00; c12 = c00; c13 = c00;
            c20 = c00; c21 = c00; c22 = c00; c23 = c00; c30 = c00; c31 = c00; c32 = c00; c33 = c00;
        }
        for (int p = k0; p < k1; p++) {
            int bo = bj + p * ldb;
            FloatVector y0 = FloatVector.fromArray(S, b, bo), y1 = FloatVector.fromArray(S, b, bo + L);
            FloatVector y2 = FloatVector.fromArray(S, b, bo + 2 * L), y3 = FloatVector.fromArray(S, b, bo + 3 * L);
            int ap = p * acs;
            FloatVector x = FloatVector.broadcast(S, a[a0 + ap]);
            c00 = x.fma(y0, c00); c01 = x.fma(y1, c01); c02 = x.fma(y2, c02); c03 = x.fma(y3, c03);
            x = FloatVector.broadcast(S, a[a1 + ap]);
            c10 = x.fma(y0, c10); c11 = x.fma(y1, c11); c12 = x.fma(y2, c12); c13 = x.fma(y3, c13);
            x = FloatVector.broadcast(S, a[a2 + ap]);
            c20 = x.fma(y0, c20); c21 = x.fma(y1, c21); c22 = x.fma(y2, c22); c23 = x.fma(y3, c23);
            x = FloatVector.broadcast(S, a[a3 + ap]);
            c30 = x.fma(y0, c30); c31 = x.fma(y1, c31); c32 = x.fma(y2, c32); c33 = x.fma(y3, c33);
        }
        c00.intoArray(c, r0); c01.intoArray(c, r0 + L); c02.intoArray(c, r0 + 2 * L); c03.intoArray(c, r0 + 3 * L);
        c10.intoArray(c, r1); c11.intoArray(c, r1 + L); c12.intoArray(c, r1 + 2 * L); c13.intoArray(c, r1 + 3 * L);
        c20.intoArray(c, r2); c21.intoArray(c, r2 + L); c22.intoArray(c, r2 + 2 * L); c23.intoArray(c, r2 + 3 * L);
        c30.intoArray(c, r3); c31.intoArray(c, r3 + L); c32.intoArray(c, r3 + 2 * L); c33.intoArray(c, r3 + 3 * L);
    }

    /** Columns [j0,j1) of one row of C over k in [k0,k1), with the same fma chain as the vector paths. */
    private static void scalarRow(float[] a, int ai, int acs, float[] b, int bOff, int ldb, float[] c, int ri, int j0, int j1,
                                  int k0, int k1, boolean load) {
        for (int j = j0; j < j1; j++) {
            float s = load ? c[ri + j] : 0f;
            for (int p = k0; p < k1; p++) s = Math.fma(a[ai + p * acs], b[bOff + p * ldb + j], s);
            c[ri + j] = s;
        }
    }

    /** dst[cols, rows] = src[rows, cols]ᵀ, parallel over blocks. */
    public static void transpose(Parallel par, float[] src, int srcOff, int rows, int cols, float[] dst, int dstOff) {
        final int bs = 32;
        int tr = (rows + bs - 1) / bs, tc = (cols + bs - 1) / bs;
        par.forEach(tr * tc, task -> {
            int r0 = (task / tc) * bs, c0 = (task % tc) * bs;
            int r1 = Math.min(rows, r0 + bs), c1 = Math.min(cols, c0 + bs);
            for (int r = r0; r < r1; r++) {
                int s = srcOff + r * cols;
                for (int cc = c0; cc < c1; cc++) dst[dstOff + cc * rows + r] = src[s + cc];
            }
        });
    }

    /**
     * Sum of the lanes in a fixed order. ({@code reduceLanes(VectorOperators.ADD)} may add in a different order when
     * compiled than when interpreted, which would make runs depend on JIT timing; this does not.)
     */
    static float hsum(FloatVector v) {
        for (VectorShuffle<Float> sh : BUTTERFLY) v = v.add(v.rearrange(sh));
        return v.lane(0);
    }

    /** Lane i ↔ lane i xor h for h = L/2, L/4, ..., 1: a butterfly that leaves the total in every lane. */
    @SuppressWarnings("unchecked")
    private static final VectorShuffle<Float>[] BUTTERFLY = butterfly();

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] butterfly() {
        int steps = Integer.numberOfTrailingZeros(L);
        VectorShuffle<Float>[] out = new VectorShuffle[steps];
        for (int k = 0; k < steps; k++) {
            int h = L >> (k + 1);
            out[k] = VectorShuffle.fromOp(S, i -> i ^ h);
        }
        return out;
    }

    /** Σ a[ao+i]·b[bo+i], i < n. */
    public static float dot(float[] a, int ao, float[] b, int bo, int n) {
        int i = 0;
        FloatVector s0 = FloatVector.zero(S), s1 = s0;
        for (; i + 2 * L <= n; i += 2 * L) {
            s0 = FloatVector.fromArray(S, a, ao + i).fma(FloatVector.fromArray(S, b, bo + i), s0);
            s1 = FloatVector.fromArray(S, a, ao + i + L).fma(FloatVector.fromArray(S, b, bo + i + L), s1);
        }
        for (; i + L <= n; i += L) s0 = FloatVector.fromArray(S, a, ao + i).fma(FloatVector.fromArray(S, b, bo + i), s0);
        float s = hsum(s0.add(s1));
        for (; i < n; i++) s += a[ao + i] * b[bo + i];
        return s;
    }

    /** y[yo+i] += alpha·x[xo+i], i < n. */
    public static void axpy(float alpha, float[] x, int xo, float[] y, int yo, int n) {
        int i = 0;
        FloatVector va = FloatVector.broadcast(S, alpha);
        for (; i + L <= n; i += L) {
            FloatVector.fromArray(S, x, xo + i).fma(va, FloatVector.fromArray(S, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] += alpha * x[xo + i];
    }

    /**
     * out[oo + j] (= or +=) Σ_{r<count} coef[co + r·cStride] · rows[ro + r·rStride + j] for j < n: a weighted
     * sum of rows kept in registers (up to 4 vectors at a time) instead of one axpy per row.
     */
    public static void weightedRows(float[] coef, int co, int cStride, int count, float[] rows, int ro, int rStride,
                                    float[] out, int oo, int n, boolean accumulate) {
        int j = 0;
        for (; j + 4 * L <= n; j += 4 * L) {
            FloatVector s0 = accumulate ? FloatVector.fromArray(S, out, oo + j) : FloatVector.zero(S);
            FloatVector s1 = accumulate ? FloatVector.fromArray(S, out, oo + j + L) : FloatVector.zero(S);
            FloatVector s2 = accumulate ? FloatVector.fromArray(S, out, oo + j + 2 * L) : FloatVector.zero(S);
            FloatVector s3 = accumulate ? FloatVector.fromArray(S, out, oo + j + 3 * L) : FloatVector.zero(S);
            for (int r = 0; r < count; r++) {
                FloatVector w = FloatVector.broadcast(S, coef[co + r * cStride]);
                int b = ro + r * rStride + j;
                s0 = w.fma(FloatVector.fromArray(S, rows, b), s0);
                s1 = w.fma(FloatVector.fromArray(S, rows, b + L), s1);
                s2 = w.fma(FloatVector.fromArray(S, rows, b + 2 * L), s2);
                s3 = w.fma(FloatVector.fromArray(S, rows, b + 3 * L), s3);
            }
            s0.intoArray(out, oo + j); s1.intoArray(out, oo + j + L); s2.intoArray(out, oo + j + 2 * L); s3.intoArray(out, oo + j + 3 * L);
        }
        for (; j + L <= n; j += L) {
            FloatVector s0 = accumulate ? FloatVector.fromArray(S, out, oo + j) : FloatVector.zero(S);
            for (int r = 0; r < count; r++) {
                s0 = FloatVector.broadcast(S, coef[co + r * cStride]).fma(FloatVector.fromArray(S, rows, ro + r * rStride + j), s0);
            }
            s0.intoArray(out, oo + j);
        }
        for (; j < n; j++) {
            float s0 = accumulate ? out[oo + j] : 0f;
            for (int r = 0; r < count; r++) s0 = Math.fma(coef[co + r * cStride], rows[ro + r * rStride + j], s0);
            out[oo + j] = s0;
        }
    }

    /** y[yo+i] += x[xo+i], i < n. */
    public static void add(float[] x, int xo, float[] y, int yo, int n) {
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector.fromArray(S, x, xo + i).add(FloatVector.fromArray(S, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] += x[xo + i];
    }
}
