package dev.lathe.train;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * F32 kernels for training: one register-blocked, cache-blocked matrix product {@code C = A·Bᵀ} (both
 * operands row-major with the reduction dimension contiguous) parallel over output tiles, plus the vector
 * helpers used by attention and the element-wise operations. Every other product is expressed through
 * {@link #nt} by transposing one operand first ({@link #transpose}).
 */
public final class Kernels {
    private Kernels() {}

    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();

    /** Output rows of A per task / per tile of B rows per task. */
    private static final int TILE_M = 64, TILE_N = 64;

    /**
     * C[M,N] (row stride ldc) = (or +=, when accumulate) A[M,K] · B[N,K]ᵀ, all row-major with row strides
     * K (A, B) and ldc (C). Deterministic: each C element is one dot product in a fixed order.
     */
    public static void nt(Parallel par, float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, int ldc,
                          int m, int n, int k, boolean accumulate) {
        int tm = (m + TILE_M - 1) / TILE_M, tn = (n + TILE_N - 1) / TILE_N;
        par.forEach(tm * tn, task -> {
            int i0 = (task / tn) * TILE_M, j0 = (task % tn) * TILE_N;
            ntTile(a, aOff, b, bOff, c, cOff, ldc, i0, Math.min(m, i0 + TILE_M), j0, Math.min(n, j0 + TILE_N), k, accumulate);
        });
    }

    /** Serial A·Bᵀ over a tile of rows [i0,i1) × columns [j0,j1). */
    static void ntTile(float[] a, int aOff, float[] b, int bOff, float[] c, int cOff, int ldc,
                       int i0, int i1, int j0, int j1, int k, boolean acc) {
        int kv = k - k % L;
        int i = i0;
        for (; i + 4 <= i1; i += 4) {
            int a0 = aOff + i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
            int j = j0;
            for (; j + 4 <= j1; j += 4) {
                int b0 = bOff + j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
                FloatVector c00 = FloatVector.zero(S), c01 = c00, c02 = c00, c03 = c00;
                FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
                FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
                FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
                for (int p = 0; p < kv; p += L) {
                    FloatVector x0 = FloatVector.fromArray(S, a, a0 + p);
                    FloatVector x1 = FloatVector.fromArray(S, a, a1 + p);
                    FloatVector x2 = FloatVector.fromArray(S, a, a2 + p);
                    FloatVector x3 = FloatVector.fromArray(S, a, a3 + p);
                    FloatVector y = FloatVector.fromArray(S, b, b0 + p);
                    c00 = x0.fma(y, c00); c10 = x1.fma(y, c10); c20 = x2.fma(y, c20); c30 = x3.fma(y, c30);
                    y = FloatVector.fromArray(S, b, b1 + p);
                    c01 = x0.fma(y, c01); c11 = x1.fma(y, c11); c21 = x2.fma(y, c21); c31 = x3.fma(y, c31);
                    y = FloatVector.fromArray(S, b, b2 + p);
                    c02 = x0.fma(y, c02); c12 = x1.fma(y, c12); c22 = x2.fma(y, c22); c32 = x3.fma(y, c32);
                    y = FloatVector.fromArray(S, b, b3 + p);
                    c03 = x0.fma(y, c03); c13 = x1.fma(y, c13); c23 = x2.fma(y, c23); c33 = x3.fma(y, c33);
                }
                int r0 = cOff + i * ldc + j, r1 = r0 + ldc, r2 = r1 + ldc, r3 = r2 + ldc;
                fin(c, r0, c00, a, a0, b, b0, kv, k, acc); fin(c, r0 + 1, c01, a, a0, b, b1, kv, k, acc);
                fin(c, r0 + 2, c02, a, a0, b, b2, kv, k, acc); fin(c, r0 + 3, c03, a, a0, b, b3, kv, k, acc);
                fin(c, r1, c10, a, a1, b, b0, kv, k, acc); fin(c, r1 + 1, c11, a, a1, b, b1, kv, k, acc);
                fin(c, r1 + 2, c12, a, a1, b, b2, kv, k, acc); fin(c, r1 + 3, c13, a, a1, b, b3, kv, k, acc);
                fin(c, r2, c20, a, a2, b, b0, kv, k, acc); fin(c, r2 + 1, c21, a, a2, b, b1, kv, k, acc);
                fin(c, r2 + 2, c22, a, a2, b, b2, kv, k, acc); fin(c, r2 + 3, c23, a, a2, b, b3, kv, k, acc);
                fin(c, r3, c30, a, a3, b, b0, kv, k, acc); fin(c, r3 + 1, c31, a, a3, b, b1, kv, k, acc);
                fin(c, r3 + 2, c32, a, a3, b, b2, kv, k, acc); fin(c, r3 + 3, c33, a, a3, b, b3, kv, k, acc);
            }
            for (; j < j1; j++) {
                int bj = bOff + j * k;
                for (int u = 0; u < 4; u++) store(c, cOff + (i + u) * ldc + j, dot(a, a0 + u * k, b, bj, k), acc);
            }
        }
        for (; i < i1; i++) {
            int ai = aOff + i * k;
            for (int j = j0; j < j1; j++) store(c, cOff + i * ldc + j, dot(a, ai, b, bOff + j * k, k), acc);
        }
    }

    /**
     * Sum of the lanes in a fixed order. ({@code reduceLanes(VectorOperators.ADD)} may add in a different order when
     * compiled than when interpreted, which would make runs depend on JIT timing; this does not.)
     */
    static float hsum(FloatVector v) {
        float s = 0f;
        for (int i = 0; i < L; i++) s += v.lane(i);
        return s;
    }

    /** Reduces a vector accumulator, adds the scalar tail [kv, k) and stores (or accumulates) it. */
    private static void fin(float[] c, int idx, FloatVector v, float[] a, int ai, float[] b, int bj, int kv, int k, boolean acc) {
        float s = hsum(v);
        for (int p = kv; p < k; p++) s += a[ai + p] * b[bj + p];
        c[idx] = acc ? c[idx] + s : s;
    }

    private static void store(float[] c, int idx, float v, boolean acc) {
        c[idx] = acc ? c[idx] + v : v;
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

    /** y[yo+i] += x[xo+i], i < n. */
    public static void add(float[] x, int xo, float[] y, int yo, int n) {
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector.fromArray(S, x, xo + i).add(FloatVector.fromArray(S, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] += x[xo + i];
    }
}
