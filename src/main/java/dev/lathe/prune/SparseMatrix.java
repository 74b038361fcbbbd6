package dev.lathe.prune;

import dev.lathe.LatheException;
import dev.lathe.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;


/**
 * A [rows, cols] matrix stored by its kept values only (the compressed-tensors "sparse-bitmask" layout): one
 * bit per column (64 per long, row-aligned), the kept values packed row after row in column order, and
 * {@code rowStart[r]} = index of row r's first value. N:M-pruned matrices use the same layout: for 2:4 the
 * bitmask costs exactly what 2-bit indices would (1 bit per column) and for 4:8 less (1 vs 1.5), and a
 * bitmask decodes in the kernel for free while packed indices measured 3-7x slower (see SparseBench).
 * Values are F32, F16, BF16 or Q8 (int8 with an F16 scale per {@value SparseKernels#Q8_GROUP} columns).
 */
public final class SparseMatrix {
    final int rows, cols;
    final ValueType valueType;
    final int maskWords; // longs per row of the bitmask
    final long[] mask;
    final int[] rowStart; // rows + 1
    final float[] f;
    /** F16/BF16 values, little-endian, {@link #storedValues()} of them: the mapped file itself for a folder read by {@link SparseSource}. */
    final MemorySegment h;
    final byte[] q;
    final short[] scales;
    final long nonZeros;

    private SparseMatrix(int rows, int cols, ValueType vt, long[] mask, int[] rowStart, float[] f, MemorySegment h, byte[] q,
                         short[] scales, long nonZeros) {
        this.rows = rows;
        this.cols = cols;
        this.valueType = vt;
        this.maskWords = (cols + 63) >>> 6;
        this.mask = mask;
        this.rowStart = rowStart;
        this.f = f;
        this.h = h;
        this.q = q;
        this.scales = scales;
        this.nonZeros = nonZeros;
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

    /** Non-zero values (Q8 values that round to zero still count as stored, not as non-zero). */
    public long nonZeros() {
        return nonZeros;
    }

    public long storedValues() {
        return rowStart[rows];
    }

    /** Kept values of row r. */
    public int rowCount(int r) {
        return rowStart[r + 1] - rowStart[r];
    }

    /** Bytes of the stored form: values, Q8 scales, bitmask (cols/8 per row) and row offsets (int32). */
    public long storageBytes() {
        long b = storedValues() * valueType.bytes;
        if (valueType == ValueType.Q8) b += (long) rows * (cols / SparseKernels.Q8_GROUP) * 2;
        return b + (long) rows * ((cols + 7) / 8) + 4L * rows;
    }

    public String describe() {
        return "bitmask sparse " + valueType;
    }

    /** Encodes a dense row-major matrix, dropping its zeros. */
    public static SparseMatrix encode(float[] w, int rows, int cols, ValueType vt) {
        if ((long) rows * cols != w.length || rows < 1 || cols < 1) throw new IllegalArgumentException("bad shape " + rows + "x" + cols + " for " + w.length + " values");
        if (vt == ValueType.Q8 && cols % SparseKernels.Q8_GROUP != 0) {
            throw new LatheException("Q8 sparse values need a row length divisible by " + SparseKernels.Q8_GROUP + ", got " + cols);
        }
        for (float v : w) if (!Float.isFinite(v)) throw new LatheException("cannot store a non-finite weight (" + v + ") sparsely");
        int maskWords = (cols + 63) >>> 6;
        long[] mask = new long[rows * maskWords];
        int[] rowStart = new int[rows + 1];
        long p0 = 0;
        for (int r = 0; r < rows; r++) {
            rowStart[r] = (int) p0;
            for (int c = 0; c < cols; c++) {
                if (w[r * cols + c] != 0f) {
                    mask[r * maskWords + (c >>> 6)] |= 1L << (c & 63);
                    p0++;
                }
            }
            if (p0 > Integer.MAX_VALUE - 64) throw new LatheException("too many non-zeros for one sparse matrix");
        }
        rowStart[rows] = (int) p0;
        int stored = (int) p0;
        float[] f = null;
        short[] h = null, scales = null;
        byte[] q = null;
        int pad = SparseKernels.L;
        switch (vt) {
            case F32 -> f = new float[stored + pad];
            case F16, BF16 -> h = new short[stored];
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
                    float v = w[r * cols + c];
                    if (v == 0f) continue;
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
        MemorySegment hs = null;
        if (h != null) {
            // native: C2 vectorizes the widening loop over native segments (the mapped-file case) best
            hs = Arena.ofAuto().allocate(2L * stored, 64);
            MemorySegment.copy(h, 0, hs, Tensor.I16_LE, 0, stored);
        }
        return new SparseMatrix(rows, cols, vt, mask, rowStart, f, hs, q, scales, vt == ValueType.F32 ? p0 : countNonZero(vt, f, hs, q, stored));
    }

    /**
     * Builds from stored parts (a compressed-tensors file): {@code f} the F32 values (padded by {@link SparseKernels#L}),
     * or {@code h} the F16/BF16 values (little-endian, used in place: a slice of the mapped file stays mapped).
     */
    static SparseMatrix ofParts(int rows, int cols, ValueType vt, long[] mask, int[] rowStart, float[] f, MemorySegment h) {
        int stored = rowStart[rows];
        return new SparseMatrix(rows, cols, vt, mask, rowStart, f, h, null, null, countNonZero(vt, f, h, null, stored));
    }

    /** Builds from stored int8 parts: {@code q} (padded by {@link SparseKernels#L}) and F16 scales per {@value SparseKernels#Q8_GROUP} columns. */
    static SparseMatrix ofQ8Parts(int rows, int cols, long[] mask, int[] rowStart, byte[] q, short[] scales) {
        int stored = rowStart[rows];
        return new SparseMatrix(rows, cols, ValueType.Q8, mask, rowStart, null, null, q, scales, countNonZero(ValueType.Q8, null, null, q, stored));
    }

    private static long countNonZero(ValueType vt, float[] f, MemorySegment h, byte[] q, int stored) {
        long nz = 0;
        for (int i = 0; i < stored; i++) {
            boolean z = switch (vt) {
                case F32 -> f[i] == 0f;
                case F16, BF16 -> (h.get(Tensor.I16_LE, 2L * i) & 0x7fff) == 0;
                case Q8 -> q[i] == 0;
            };
            if (!z) nz++;
        }
        return nz;
    }

    static short toBf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }

    /** The dense row-major matrix (dequantized for Q8). */
    public float[] toDense() {
        float[] out = new float[rows * cols];
        float[] buf = new float[cols + SparseKernels.L];
        for (int r = 0; r < rows; r++) decodeRow(r, out, r * cols, buf);
        return out;
    }

    /**
     * The matrix in the dense layout of its value type, exactly: F32, F16 or BF16 with zeros where nothing is kept,
     * or Q8_0 blocks (the group scale and 32 int8 values, zeros where nothing is kept) for Q8 values. Lets a sparse
     * file run on the dense kernels where they are faster ({@link SparseSource.Kernels}).
     */
    public dev.lathe.tensor.Tensor toDenseTensor(String name) {
        long[] shape = {rows, cols};
        if (valueType == ValueType.Q8) {
            int g = SparseKernels.Q8_GROUP, ng = cols / g, blockBytes = 2 + g;
            byte[] out = new byte[rows * ng * blockBytes];
            java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(out).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            for (int r = 0; r < rows; r++) {
                int p = rowStart[r];
                for (int k = 0; k < ng; k++) {
                    int b = (r * ng + k) * blockBytes;
                    bb.putShort(b, scales[r * ng + k]);
                    for (int j = 0; j < g; j++) {
                        int c = k * g + j;
                        if ((mask[r * maskWords + (c >>> 6)] >>> (c & 63) & 1) != 0) out[b + 2 + j] = q[p++];
                    }
                }
            }
            return new dev.lathe.tensor.Tensor(name, dev.lathe.tensor.GgmlType.Q8_0, shape, java.lang.foreign.MemorySegment.ofArray(out));
        }
        if (valueType == ValueType.F32) return dev.lathe.tensor.TensorOps.ofFloats(name, shape, toDense());
        byte[] out = new byte[rows * cols * 2];
        for (int r = 0; r < rows; r++) {
            int p = rowStart[r];
            for (int c = 0; c < cols; c++) {
                if ((mask[r * maskWords + (c >>> 6)] >>> (c & 63) & 1) == 0) continue;
                int o = 2 * (r * cols + c);
                short v = h.get(Tensor.I16_LE, 2L * p++);
                out[o] = (byte) v;
                out[o + 1] = (byte) (v >>> 8);
            }
        }
        return new dev.lathe.tensor.Tensor(name, valueType == ValueType.F16 ? dev.lathe.tensor.GgmlType.F16 : dev.lathe.tensor.GgmlType.BF16, shape,
                java.lang.foreign.MemorySegment.ofArray(out));
    }

    /** Bytes of {@link #toDenseTensor}. */
    public long denseBytes() {
        return valueType == ValueType.Q8 ? (long) rows * (cols / SparseKernels.Q8_GROUP) * (2 + SparseKernels.Q8_GROUP)
                : (long) rows * cols * valueType.bytes;
    }

    /** Writes row r densely into {@code dst[off..off+cols)}. */
    void decodeRow(int r, float[] dst, int off) {
        decodeRow(r, dst, off, new float[cols + SparseKernels.L]);
    }

    /** As {@link #decodeRow(int, float[], int)}; {@code valueBuf} holds cols + L floats (F16/BF16). */
    void decodeRow(int r, float[] dst, int off, float[] valueBuf) {
        int mo = r * maskWords, p = rowStart[r];
        switch (valueType) {
            case F32 -> SparseKernels.expandF32(mask, mo, f, p, dst, off, cols);
            case F16, BF16 -> {
                SparseKernels.widen(h, valueType == ValueType.BF16, p, rowStart[r + 1] - p, valueBuf);
                SparseKernels.expandF32(mask, mo, valueBuf, 0, dst, off, cols);
            }
            case Q8 -> SparseKernels.expandQ8(mask, mo, q, scales, r * (cols / SparseKernels.Q8_GROUP), p, dst, off, cols);
        }
    }

    /** Dot product of row r with {@code x[xOff..xOff+cols)}; {@code valueBuf} holds cols + L floats (F16/BF16). */
    float rowDot(int r, float[] x, int xOff, float[] valueBuf) {
        int mo = r * maskWords;
        int p = rowStart[r];
        return switch (valueType) {
            case F32 -> SparseKernels.dotF32(mask, mo, f, p, x, xOff, cols);
            case F16 -> SparseKernels.dotHalfWiden(mask, mo, h, false, p, rowStart[r + 1] - p, valueBuf, x, xOff, cols);
            case BF16 -> SparseKernels.dotHalfWiden(mask, mo, h, true, p, rowStart[r + 1] - p, valueBuf, x, xOff, cols);
            case Q8 -> SparseKernels.dotQ8(mask, mo, q, scales, r * (cols / SparseKernels.Q8_GROUP), p, x, xOff, cols);
        };
    }
}
