package dev.lathe.prune;

import dev.lathe.LatheException;

import java.util.Arrays;

/**
 * A [rows, cols] matrix stored by its kept values only.
 * <ul>
 *   <li>{@link Layout#BITMASK}: one bit per column (64 per long, row-aligned), values packed row after row,
 *   {@code rowStart[r]} = index of row r's first value (compressed-tensors "sparse-bitmask").</li>
 *   <li>{@link Layout#NM}: exactly N values per group of M columns (zeros filled in when a group has fewer
 *   non-zeros), so row r's values start at r·cols·N/M and need no offsets; each value carries its log2(M)-bit
 *   position within its group, packed as a bit stream per row (row-aligned to 64 bits).</li>
 * </ul>
 * Values are F32, F16, BF16 or Q8 (int8 with an F16 scale per {@value SparseKernels#Q8_GROUP} columns).
 */
public final class SparseMatrix {
    public enum Layout { BITMASK, NM }

    final Layout layout;
    final int rows, cols;
    final ValueType valueType;
    final int n, m, indexBits;
    final int maskWords; // longs per row of the bitmask
    final long[] mask; // BITMASK only
    final int[] rowStart; // BITMASK only (rows + 1)
    final int keptPerRow; // NM only
    final int idxWords; // NM: longs per row of the index stream
    final long[] idx; // NM only
    final short[] groupMask; // NM: group code -> M-bit column mask (when N·log2 M <= 12)
    final float[] f;
    final short[] h;
    final byte[] q;
    final short[] scales;
    final long nonZeros;

    private SparseMatrix(Layout layout, int rows, int cols, ValueType vt, int n, int m, long[] mask, int[] rowStart,
                         long[] idx, float[] f, short[] h, byte[] q, short[] scales, long nonZeros) {
        this.layout = layout;
        this.rows = rows;
        this.cols = cols;
        this.valueType = vt;
        this.n = n;
        this.m = m;
        this.indexBits = m == 0 ? 0 : Integer.numberOfTrailingZeros(m);
        this.maskWords = (cols + 63) >>> 6;
        this.mask = mask;
        this.rowStart = rowStart;
        this.keptPerRow = m == 0 ? 0 : cols / m * n;
        this.idxWords = m == 0 ? 0 : (int) (((long) (cols / m) * n * indexBits + 63) >>> 6);
        this.idx = idx;
        this.groupMask = m != 0 && n * indexBits <= 12 && m <= 16 ? table(n, m, indexBits) : null;
        this.f = f;
        this.h = h;
        this.q = q;
        this.scales = scales;
        this.nonZeros = nonZeros;
    }

    private static short[] table(int n, int m, int b) {
        short[] t = new short[1 << (n * b)];
        for (int code = 0; code < t.length; code++) {
            int mk = 0;
            for (int k = 0; k < n; k++) mk |= 1 << ((code >>> (k * b)) & (m - 1));
            t[code] = (short) mk;
        }
        return t;
    }

    public Layout layout() {
        return layout;
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    public ValueType valueType() {
        return valueType;
    }

    /** Stored values that are not zero. */
    public long nonZeros() {
        return nonZeros;
    }

    /** Number of stored values (NM stores N per group even where a group has fewer non-zeros). */
    public long storedValues() {
        return layout == Layout.BITMASK ? rowStart[rows] : (long) rows * keptPerRow;
    }

    /** Bytes of the stored form: values, scales, bitmask and row offsets (int32) or packed indices. */
    public long storageBytes() {
        long b = storedValues() * valueType.bytes;
        if (valueType == ValueType.Q8) b += (long) rows * (cols / SparseKernels.Q8_GROUP) * 2;
        if (layout == Layout.BITMASK) b += (long) rows * ((cols + 7) / 8) + 4L * rows;
        else b += (long) rows * (((long) keptPerRow * indexBits + 7) / 8);
        return b;
    }

    public String describe() {
        return (layout == Layout.BITMASK ? "bitmask" : n + ":" + m) + " sparse " + valueType;
    }

    /** Encodes a dense row-major matrix; zeros are dropped (BITMASK) or must fit the N:M pattern (NM). */
    public static SparseMatrix encode(float[] w, int rows, int cols, Layout layout, ValueType vt, int n, int m) {
        if ((long) rows * cols != w.length || rows < 1 || cols < 1) throw new IllegalArgumentException("bad shape " + rows + "x" + cols + " for " + w.length + " values");
        if (vt == ValueType.Q8 && cols % SparseKernels.Q8_GROUP != 0) {
            throw new LatheException("Q8 sparse values need a row length divisible by " + SparseKernels.Q8_GROUP + ", got " + cols);
        }
        for (float v : w) if (!Float.isFinite(v)) throw new LatheException("cannot store a non-finite weight (" + v + ") sparsely");
        long nz = 0;
        for (float v : w) if (v != 0f) nz++;
        if (nz > Integer.MAX_VALUE - 64) throw new LatheException("too many non-zeros for one sparse matrix: " + nz);
        int maskWords = (cols + 63) >>> 6;
        long[] mask = null, idx = null;
        int[] rowStart = null;
        int stored;
        // kept columns (in order) of every row, as a bitmask even for NM (the kernels use it)
        long[] keep = new long[rows * maskWords];
        if (layout == Layout.BITMASK) {
            rowStart = new int[rows + 1];
            int p = 0;
            for (int r = 0; r < rows; r++) {
                rowStart[r] = p;
                for (int c = 0; c < cols; c++) {
                    if (w[r * cols + c] != 0f) {
                        keep[r * maskWords + (c >>> 6)] |= 1L << (c & 63);
                        p++;
                    }
                }
            }
            rowStart[rows] = p;
            stored = p;
            mask = keep;
        } else {
            Pattern pat = Pattern.nm(n, m);
            if (cols % m != 0) throw new LatheException("N:M pattern " + n + ":" + m + " does not divide the row length " + cols);
            int b = pat.indexBits(), groups = cols / m;
            int idxWords = (int) (((long) groups * n * b + 63) >>> 6);
            idx = new long[rows * idxWords];
            for (int r = 0; r < rows; r++) {
                long bit = 0;
                for (int g = 0; g < groups; g++) {
                    int base = r * cols + g * m, cnt = 0;
                    for (int j = 0; j < m; j++) if (w[base + j] != 0f) cnt++;
                    if (cnt > n) throw new LatheException("row " + r + " group " + g + " has " + cnt + " non-zeros, more than the " + n + ":" + m + " pattern allows");
                    // keep the non-zeros, then fill up with the first zero positions; positions ascending
                    int fill = n - cnt;
                    for (int j = 0; j < m; j++) {
                        boolean k = w[base + j] != 0f || (fill > 0 && fill-- > 0);
                        if (!k) continue;
                        int c = g * m + j;
                        keep[r * maskWords + (c >>> 6)] |= 1L << (c & 63);
                        writeBits(idx, r * idxWords, bit, b, j);
                        bit += b;
                    }
                }
            }
            stored = rows * groups * n;
        }
        float[] f = null;
        short[] h = null, scales = null;
        byte[] q = null;
        int pad = SparseKernels.L;
        switch (vt) {
            case F32 -> f = new float[stored + pad];
            case F16, BF16 -> h = new short[stored + pad];
            case Q8 -> {
                q = new byte[stored + pad];
                scales = new short[rows * (cols / SparseKernels.Q8_GROUP)];
            }
        }
        int p = 0;
        for (int r = 0; r < rows; r++) {
            for (int g0 = 0; g0 < cols; g0 += SparseKernels.Q8_GROUP) {
                int g1 = Math.min(cols, g0 + SparseKernels.Q8_GROUP);
                float inv = 0;
                if (vt == ValueType.Q8) {
                    float amax = 0;
                    for (int c = g0; c < g1; c++) amax = Math.max(amax, Math.abs(w[r * cols + c]));
                    short sh = Float.floatToFloat16(amax / 127f);
                    scales[r * (cols / SparseKernels.Q8_GROUP) + g0 / SparseKernels.Q8_GROUP] = sh;
                    float d = Float.float16ToFloat(sh);
                    inv = d == 0 ? 0 : 1f / d;
                }
                for (int c = g0; c < g1; c++) {
                    if ((keep[r * maskWords + (c >>> 6)] >>> (c & 63) & 1) == 0) continue;
                    float v = w[r * cols + c];
                    switch (vt) {
                        case F32 -> f[p] = v;
                        case F16 -> h[p] = Float.floatToFloat16(v);
                        case BF16 -> h[p] = toBf16(v);
                        case Q8 -> q[p] = (byte) Math.max(-127, Math.min(127, Math.round(v * inv)));
                    }
                    p++;
                }
            }
        }
        return new SparseMatrix(layout, rows, cols, vt, n, m, mask, rowStart, idx, f, h, q, scales, nz);
    }

    static short toBf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }

    private static void writeBits(long[] a, int wordOff, long bit, int nbits, int value) {
        int w = wordOff + (int) (bit >>> 6), s = (int) (bit & 63);
        a[w] |= ((long) value) << s;
        if (s + nbits > 64) a[w + 1] |= ((long) value) >>> (64 - s);
    }

    private static int readBits(long[] a, int wordOff, long bit, int nbits) {
        int w = wordOff + (int) (bit >>> 6), s = (int) (bit & 63);
        long v = a[w] >>> s;
        if (s + nbits > 64) v |= a[w + 1] << (64 - s);
        return (int) (v & ((1L << nbits) - 1));
    }

    /** Fills {@code out[0..maskWords)} with row r's kept-column bitmask (NM: decoded from the indices). */
    void rowMask(int r, long[] out) {
        Arrays.fill(out, 0, maskWords, 0L);
        int nb = n * indexBits, groups = cols / m, base = r * idxWords;
        long bit = 0;
        if (groupMask != null) {
            for (int g = 0; g < groups; g++, bit += nb) {
                int c = g * m;
                out[c >>> 6] |= (long) (groupMask[readBits(idx, base, bit, nb)] & 0xffff) << (c & 63);
            }
        } else {
            for (int g = 0; g < groups; g++) {
                for (int k = 0; k < n; k++, bit += indexBits) {
                    int c = g * m + readBits(idx, base, bit, indexBits);
                    out[c >>> 6] |= 1L << (c & 63);
                }
            }
        }
    }

    /** Index of row r's first stored value. */
    int rowStart(int r) {
        return layout == Layout.BITMASK ? rowStart[r] : r * keptPerRow;
    }

    /** The dense row-major matrix (dequantized for Q8). */
    public float[] toDense() {
        float[] out = new float[rows * cols];
        long[] mk = new long[maskWords];
        for (int r = 0; r < rows; r++) decodeRow(r, mk, out, r * cols);
        return out;
    }

    /** Writes row r densely into {@code dst[off..off+cols)}; {@code scratch} holds maskWords longs. */
    void decodeRow(int r, long[] scratch, float[] dst, int off) {
        long[] mk;
        int mo;
        if (layout == Layout.BITMASK) {
            mk = mask;
            mo = r * maskWords;
        } else {
            rowMask(r, scratch);
            mk = scratch;
            mo = 0;
        }
        int p = rowStart(r);
        for (int c = 0; c < cols; c++) {
            float v = 0;
            if ((mk[mo + (c >>> 6)] >>> (c & 63) & 1) != 0) {
                v = switch (valueType) {
                    case F32 -> f[p];
                    case F16 -> Float.float16ToFloat(h[p]);
                    case BF16 -> SparseKernels.half(h[p], true);
                    case Q8 -> Float.float16ToFloat(scales[r * (cols / SparseKernels.Q8_GROUP) + c / SparseKernels.Q8_GROUP]) * q[p];
                };
                p++;
            }
            dst[off + c] = v;
        }
    }

    /** Dot product of row r with {@code x[xOff..xOff+cols)}; {@code scratch} holds maskWords longs (NM). */
    float rowDot(int r, float[] x, int xOff, long[] scratch) {
        long[] mk;
        int mo;
        if (layout == Layout.BITMASK) {
            mk = mask;
            mo = r * maskWords;
        } else {
            rowMask(r, scratch);
            mk = scratch;
            mo = 0;
        }
        int p = rowStart(r);
        return switch (valueType) {
            case F32 -> SparseKernels.dotF32(mk, mo, f, p, x, xOff, cols);
            case F16 -> SparseKernels.dotHalf(mk, mo, h, false, p, x, xOff, cols);
            case BF16 -> SparseKernels.dotHalf(mk, mo, h, true, p, x, xOff, cols);
            case Q8 -> SparseKernels.dotQ8(mk, mo, q, scales, r * (cols / SparseKernels.Q8_GROUP), p, x, xOff, cols);
        };
    }
}
