package dev.lathe.prune;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Sparse weight times a batch of input rows (prefill) with work proportional to the kept values. The input
 * rows are transposed once, in blocks of {@link #NB} (or {@link #L}) rows: {@code xt[c * w + j]} is column c
 * of input row j of the block, so one column of the whole block is one or four contiguous vectors. Each
 * weight row walks its set mask bits ({@code numberOfTrailingZeros}) and its packed values and accumulates
 * {@code value * xt[c]} into register accumulators that hold the row's outputs for all rows of the block;
 * two kept values are taken per step into two accumulator sets, so the FMA chains are independent.
 *
 * <p>The columns are walked in chunks of {@value #KW} mask words ({@value #KW}*64 columns): a chunk of the
 * transposed block (32 KiB for AVX-512) stays in L1 while a block of {@value #RB} weight rows runs over it,
 * their partial sums kept in a small buffer between chunks. F16/BF16/Q8 values of a row block are widened to
 * floats once (Q8 times its group scale), then read by every input block.
 */
final class SparseGemm {
    private SparseGemm() {}

    static final VectorSpecies<Float> F = SparseKernels.F;
    static final int L = SparseKernels.L;
    /** Input rows per wide block: four vectors of accumulators per value set. */
    static final int NB = 4 * L;
    /** Mask words per column chunk. */
    static final int KW = 2;
    /** Weight rows per block. */
    static final int RB = 32;

    /** Input rows left at the end of a batch that run the decode kernel, one by one, instead of a block. */
    static final int TAIL = 4;

    /**
     * The width of the next input block when {@code remaining} rows are left: 4L while more than 2L are left,
     * then 2L, then L; 0 when at most {@value #TAIL} are left (those run the decode kernel row by row).
     * A block is padded with zero rows, so a wide block over few rows wastes work.
     */
    static int blockWidth(int remaining) {
        return remaining > 2 * L ? NB : remaining > L ? 2 * L : remaining > TAIL ? L : 0;
    }

    /** Input rows of a batch of n that go through transposed blocks (the rest: {@link #TAIL}). */
    static int blockedRows(int n) {
        int i = 0;
        for (int w; i < n && (w = blockWidth(n - i)) > 0; ) i += w;
        return Math.min(i, n);
    }

    /**
     * Estimated time of {@link #rows} per mask word of the matrix (64 columns of a row) for a batch of n rows,
     * where a word holds {@code nz} kept values on average: a fixed cost per word and block (walking the mask,
     * the partial sums, a branch miss at the end of each word) plus a cost per kept value that grows with the
     * block width. In ns, fitted to SparseRouteBench (1024x1024 F16, one thread, AVX-512 Xeon, shared machine).
     */
    static double cost(int n, double nz) {
        double t = 0;
        int i = 0;
        for (int w; i < n && (w = blockWidth(n - i)) > 0; i += w) {
            t += w == NB ? 42 + 2.4 * nz : w == 2 * L ? 28 + 1.4 * nz : 22 + 0.82 * nz;
        }
        return t + Math.max(0, n - i) * rowCost(nz);
    }

    /** Estimated time of the decode kernel per mask word for one input row (as {@link #cost}). */
    static double rowCost(double nz) {
        return 6.6 + 0.06 * nz;
    }

    /**
     * Estimated time of the panel route (expand to dense, then {@code PanelGemm}'s register tiles) per mask
     * word, as {@link #cost}; refitted in session 4 when the panel route moved to PanelGemm (SparseRouteBench:
     * 32-55 ns per word at n = 2-32, 170-200 at n = 128).
     */
    static double panelCost(int n) {
        return 30 + 1.25 * n;
    }

    /** Floats of the transposed input for n rows of {@code cols} columns. */
    static long transposedSize(int n, int cols) {
        long size = 0;
        for (int i = 0, w; i < n && (w = blockWidth(n - i)) > 0; ) {
            size += (long) w * cols;
            i += w;
        }
        return size;
    }

    /** Transposes x (n rows of cols) into {@code xt} block by block; lanes past the last row are zero. */
    static void transpose(float[] x, int n, int cols, float[] xt) {
        int off = 0;
        for (int i0 = 0, w; i0 < n && (w = blockWidth(n - i0)) > 0; ) {
            int valid = Math.min(w, n - i0);
            for (int j = 0; j < valid; j++) {
                int xo = (i0 + j) * cols;
                for (int c = 0; c < cols; c++) xt[off + c * w + j] = x[xo + c];
            }
            for (int j = valid; j < w; j++) {
                for (int c = 0; c < cols; c++) xt[off + c * w + j] = 0f;
            }
            off += w * cols;
            i0 += w;
        }
    }

    /** Per-thread buffers of {@link #rows}. */
    static final class Work {
        float[] yb = new float[RB * NB];
        int[] pp = new int[RB];
        float[] vb = new float[0];
        float[] row = new float[0];
    }

    /**
     * Rows {@code [r0, r1)} of {@code y = x W^T} for all n input rows, from the transposed input {@code xt}
     * (see {@link #transpose}); y is row-major with {@code w.rows} columns.
     */
    static void rows(SparseMatrix w, float[] x, float[] xt, int n, float[] y, int r0, int r1, Work s) {
        int cols = w.cols, out = w.rows, mw = w.maskWords;
        int blocked = blockedRows(n);
        if (blocked < n) {
            if (s.row.length < cols + L) s.row = new float[cols + L];
            for (int i = blocked; i < n; i++) {
                for (int r = r0; r < r1; r++) y[i * out + r] = w.rowDot(r, x, i * cols, s.row);
            }
            if (blocked == 0) return;
        }
        for (int b0 = r0; b0 < r1; b0 += RB) {
            int b1 = Math.min(r1, b0 + RB);
            float[] v;
            int vOff;
            if (w.valueType == ValueType.F32) {
                v = w.f;
                vOff = 0;
            } else {
                int count = w.rowStart[b1] - w.rowStart[b0];
                if (s.vb.length < count + 2 * L) s.vb = new float[count + 2 * L];
                v = s.vb;
                vOff = -w.rowStart[b0];
                widen(w, b0, b1, v);
            }
            int xtOff = 0;
            for (int i0 = 0; i0 < blocked; ) {
                int bw = blockWidth(n - i0), valid = Math.min(bw, n - i0);
                for (int r = b0; r < b1; r++) s.pp[r - b0] = w.rowStart[r] + vOff;
                for (int k0 = 0; k0 < mw; k0 += KW) {
                    int k1 = Math.min(mw, k0 + KW);
                    int xo = xtOff + k0 * 64 * bw;
                    boolean first = k0 == 0;
                    for (int r = b0; r < b1; r++) {
                        int rr = r - b0;
                        int mo = r * mw;
                        s.pp[rr] = bw == NB ? row4(w.mask, mo + k0, mo + k1, v, s.pp[rr], xt, xo, s.yb, rr * NB, first)
                                : bw == 2 * L ? row2(w.mask, mo + k0, mo + k1, v, s.pp[rr], xt, xo, s.yb, rr * NB, first)
                                : row1(w.mask, mo + k0, mo + k1, v, s.pp[rr], xt, xo, s.yb, rr * NB, first);
                    }
                }
                for (int r = b0; r < b1; r++) {
                    int yo = (r - b0) * NB;
                    for (int j = 0; j < valid; j++) y[(i0 + j) * out + r] = s.yb[yo + j];
                }
                xtOff += bw * cols;
                i0 += bw;
            }
        }
    }

    /** Widens the values of rows [b0, b1) to floats (Q8: times the group scale) into {@code dst} from 0. */
    private static void widen(SparseMatrix w, int b0, int b1, float[] dst) {
        int p0 = w.rowStart[b0];
        switch (w.valueType) {
            case F16, BF16 -> SparseKernels.widen(w.h, w.valueType == ValueType.BF16, p0, w.rowStart[b1] - p0, dst);
            case Q8 -> {
                int groups = w.cols / SparseKernels.Q8_GROUP, o = 0;
                for (int r = b0; r < b1; r++) {
                    int p = w.rowStart[r], mo = r * w.maskWords;
                    for (int g = 0; g < groups; g++) {
                        long bits = (w.mask[mo + (g >>> 1)] >>> ((g & 1) << 5)) & 0xffffffffL;
                        int cnt = Long.bitCount(bits);
                        float sc = Float.float16ToFloat(w.scales[r * groups + g]);
                        // whole vectors: the lanes past cnt are overwritten by the next group (dst and q
                        // carry padding for the last one)
                        for (int i = 0; i < cnt; i += L) {
                            if (p + i + SparseKernels.B.length() > w.q.length) { // a byte vector wider than L floats
                                for (int j = i; j < cnt; j++) dst[o + j] = w.q[p + j] * sc;
                                break;
                            }
                            SparseKernels.bytes(w.q, p + i).mul(sc).intoArray(dst, o + i);
                        }
                        o += cnt;
                        p += cnt;
                    }
                }
            }
            default -> throw new IllegalStateException();
        }
    }

    /**
     * One weight row over mask words {@code [m0, m1)} against a wide block (NB lanes) whose column
     * {@code 64 * (m0 - row's first word)} starts at {@code xt[xo]}; adds into {@code yb[yo..yo+NB)} (or
     * starts from zero when {@code first}). Returns the value index after the words.
     */
    static int row4(long[] mask, int m0, int m1, float[] v, int p, float[] xt, int xo, float[] yb, int yo, boolean first) {
        FloatVector a0, a1, a2, a3;
        if (first) {
            a0 = a1 = a2 = a3 = FloatVector.zero(F);
        } else {
            a0 = FloatVector.fromArray(F, yb, yo);
            a1 = FloatVector.fromArray(F, yb, yo + L);
            a2 = FloatVector.fromArray(F, yb, yo + 2 * L);
            a3 = FloatVector.fromArray(F, yb, yo + 3 * L);
        }
        FloatVector b0 = FloatVector.zero(F), b1 = b0, b2 = b0, b3 = b0;
        for (int k = m0, cb = xo; k < m1; k++, cb += 64 * NB) {
            long m = mask[k];
            while (m != 0) {
                int o0 = cb + Long.numberOfTrailingZeros(m) * NB;
                m &= m - 1;
                FloatVector v0 = FloatVector.broadcast(F, v[p]);
                if (m == 0) {
                    a0 = FloatVector.fromArray(F, xt, o0).fma(v0, a0);
                    a1 = FloatVector.fromArray(F, xt, o0 + L).fma(v0, a1);
                    a2 = FloatVector.fromArray(F, xt, o0 + 2 * L).fma(v0, a2);
                    a3 = FloatVector.fromArray(F, xt, o0 + 3 * L).fma(v0, a3);
                    p++;
                    break;
                }
                int o1 = cb + Long.numberOfTrailingZeros(m) * NB;
                m &= m - 1;
                FloatVector v1 = FloatVector.broadcast(F, v[p + 1]);
                p += 2;
                a0 = FloatVector.fromArray(F, xt, o0).fma(v0, a0);
                a1 = FloatVector.fromArray(F, xt, o0 + L).fma(v0, a1);
                a2 = FloatVector.fromArray(F, xt, o0 + 2 * L).fma(v0, a2);
                a3 = FloatVector.fromArray(F, xt, o0 + 3 * L).fma(v0, a3);
                b0 = FloatVector.fromArray(F, xt, o1).fma(v1, b0);
                b1 = FloatVector.fromArray(F, xt, o1 + L).fma(v1, b1);
                b2 = FloatVector.fromArray(F, xt, o1 + 2 * L).fma(v1, b2);
                b3 = FloatVector.fromArray(F, xt, o1 + 3 * L).fma(v1, b3);
            }
        }
        a0.add(b0).intoArray(yb, yo);
        a1.add(b1).intoArray(yb, yo + L);
        a2.add(b2).intoArray(yb, yo + 2 * L);
        a3.add(b3).intoArray(yb, yo + 3 * L);
        return p;
    }

    /** As {@link #row4} for a block of 2L lanes. */
    static int row2(long[] mask, int m0, int m1, float[] v, int p, float[] xt, int xo, float[] yb, int yo, boolean first) {
        FloatVector a0, a1;
        if (first) {
            a0 = a1 = FloatVector.zero(F);
        } else {
            a0 = FloatVector.fromArray(F, yb, yo);
            a1 = FloatVector.fromArray(F, yb, yo + L);
        }
        FloatVector b0 = FloatVector.zero(F), b1 = b0;
        final int w = 2 * L;
        for (int k = m0, cb = xo; k < m1; k++, cb += 64 * w) {
            long m = mask[k];
            while (m != 0) {
                int o0 = cb + Long.numberOfTrailingZeros(m) * w;
                m &= m - 1;
                FloatVector v0 = FloatVector.broadcast(F, v[p]);
                if (m == 0) {
                    a0 = FloatVector.fromArray(F, xt, o0).fma(v0, a0);
                    a1 = FloatVector.fromArray(F, xt, o0 + L).fma(v0, a1);
                    p++;
                    break;
                }
                int o1 = cb + Long.numberOfTrailingZeros(m) * w;
                m &= m - 1;
                FloatVector v1 = FloatVector.broadcast(F, v[p + 1]);
                p += 2;
                a0 = FloatVector.fromArray(F, xt, o0).fma(v0, a0);
                a1 = FloatVector.fromArray(F, xt, o0 + L).fma(v0, a1);
                b0 = FloatVector.fromArray(F, xt, o1).fma(v1, b0);
                b1 = FloatVector.fromArray(F, xt, o1 + L).fma(v1, b1);
            }
        }
        a0.add(b0).intoArray(yb, yo);
        a1.add(b1).intoArray(yb, yo + L);
        return p;
    }

    /** As {@link #row4} for a narrow block of L lanes; four kept values per step into four accumulators. */
    static int row1(long[] mask, int m0, int m1, float[] v, int p, float[] xt, int xo, float[] yb, int yo, boolean first) {
        FloatVector a = first ? FloatVector.zero(F) : FloatVector.fromArray(F, yb, yo);
        FloatVector b = FloatVector.zero(F), c = b, d = b;
        for (int k = m0, cb = xo; k < m1; k++, cb += 64 * L) {
            long m = mask[k];
            int cnt = Long.bitCount(m);
            for (; cnt >= 4; cnt -= 4) {
                int o0 = cb + Long.numberOfTrailingZeros(m) * L;
                m &= m - 1;
                int o1 = cb + Long.numberOfTrailingZeros(m) * L;
                m &= m - 1;
                int o2 = cb + Long.numberOfTrailingZeros(m) * L;
                m &= m - 1;
                int o3 = cb + Long.numberOfTrailingZeros(m) * L;
                m &= m - 1;
                a = FloatVector.fromArray(F, xt, o0).fma(FloatVector.broadcast(F, v[p]), a);
                b = FloatVector.fromArray(F, xt, o1).fma(FloatVector.broadcast(F, v[p + 1]), b);
                c = FloatVector.fromArray(F, xt, o2).fma(FloatVector.broadcast(F, v[p + 2]), c);
                d = FloatVector.fromArray(F, xt, o3).fma(FloatVector.broadcast(F, v[p + 3]), d);
                p += 4;
            }
            for (; cnt > 0; cnt--) {
                int o0 = cb + Long.numberOfTrailingZeros(m) * L;
                m &= m - 1;
                a = FloatVector.fromArray(F, xt, o0).fma(FloatVector.broadcast(F, v[p++]), a);
            }
        }
        a.add(b).add(c.add(d)).intoArray(yb, yo);
        return p;
    }
}
