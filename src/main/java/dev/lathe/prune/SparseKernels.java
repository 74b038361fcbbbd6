package dev.lathe.prune;

import dev.lathe.tensor.VectorKernels;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;

/**
 * Masked dot products of one sparse row with a dense input row. The row's kept columns are a bitmask
 * (64 columns per long, bit j of word w is column 64w+j) and its kept values are packed in column order.
 * Each chunk of {@link #L} columns loads the next popcount(mask) packed values, spreads them to their lanes
 * with {@code expand} (one vexpandps on AVX-512) and does one FMA with the input; empty chunks are skipped.
 * Value arrays carry {@link #L} values of padding so a chunk may read past the last kept value.
 */
final class SparseKernels {
    private SparseKernels() {}

    static final VectorSpecies<Float> F = VectorKernels.F;
    static final int L = F.length();
    static final VectorSpecies<Byte> B = L == 16 ? ByteVector.SPECIES_128 : L == 8 ? ByteVector.SPECIES_64 : ByteVector.SPECIES_64;
    static final int Q8_GROUP = 32;
    static final long CHUNK_MASK = L == 64 ? -1L : (1L << L) - 1;

    /** Chunks per 64-column mask word. */
    static final int CPW = 64 / L;

    static float dotF32(long[] mask, int mOff, float[] v, int p, float[] x, int xOff, int cols) {
        if (L != 16) return dotF32Generic(mask, mOff, v, p, x, xOff, cols);
        // four chunks of 16 per mask word, four accumulators and value offsets from prefix popcounts: the
        // chunks are independent (no FMA or offset dependency chain between them)
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int words = cols >>> 6, c = 0;
        for (int k = 0; k < words; k++, c += 64) {
            long m = mask[mOff + k];
            int p1 = p + Long.bitCount(m & 0xffffL), p2 = p + Long.bitCount(m & 0xffffffffL), p3 = p + Long.bitCount(m & 0xffffffffffffL);
            a0 = FloatVector.fromArray(F, v, p).expand(VectorMask.fromLong(F, m)).fma(FloatVector.fromArray(F, x, xOff + c), a0);
            a1 = FloatVector.fromArray(F, v, p1).expand(VectorMask.fromLong(F, m >>> 16)).fma(FloatVector.fromArray(F, x, xOff + c + 16), a1);
            a2 = FloatVector.fromArray(F, v, p2).expand(VectorMask.fromLong(F, m >>> 32)).fma(FloatVector.fromArray(F, x, xOff + c + 32), a2);
            a3 = FloatVector.fromArray(F, v, p3).expand(VectorMask.fromLong(F, m >>> 48)).fma(FloatVector.fromArray(F, x, xOff + c + 48), a3);
            p += Long.bitCount(m);
        }
        float s = a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
        return s + tailF32(mask, mOff, v, p, x, xOff, c, cols);
    }

    private static float tailF32(long[] mask, int mOff, float[] v, int p, float[] x, int xOff, int c, int cols) {
        float s = 0;
        for (; c < cols; c++) {
            if ((mask[mOff + (c >>> 6)] >>> (c & 63) & 1) != 0) s += v[p++] * x[xOff + c];
        }
        return s;
    }

    static float dotF32Generic(long[] mask, int mOff, float[] v, int p, float[] x, int xOff, int cols) {
        FloatVector acc = FloatVector.zero(F);
        int full = cols - cols % L;
        int c = 0;
        for (; c < full; c += L) {
            long m = (mask[mOff + (c >>> 6)] >>> (c & 63)) & CHUNK_MASK;
            acc = FloatVector.fromArray(F, v, p).expand(VectorMask.fromLong(F, m)).fma(FloatVector.fromArray(F, x, xOff + c), acc);
            p += Long.bitCount(m);
        }
        return acc.reduceLanes(VectorOperators.ADD) + tailF32(mask, mOff, v, p, x, xOff, c, cols);
    }

    /**
     * F16/BF16 values: the row's packed values are first widened into {@code buf} (a plain loop that C2
     * vectorizes to vcvtph2ps / shifts), then the F32 kernel runs on them.
     */
    static float dotHalfWiden(long[] mask, int mOff, MemorySegment v, boolean bf16, int p, int count, float[] buf, float[] x, int xOff, int cols) {
        widen(v, bf16, p, count, buf);
        return dotF32(mask, mOff, buf, 0, x, xOff, cols);
    }

    static FloatVector bytes(byte[] v, int p) {
        return (FloatVector) ByteVector.fromArray(B, v, p).convertShape(VectorOperators.B2F, F, 0);
    }

    /**
     * Q8: {@code scales} holds one F16 scale per {@value #Q8_GROUP} columns of the row, from {@code sOff}; the
     * expanded int8 values are scaled per chunk (a chunk never spans two groups), so no per-group reduction.
     */
    static float dotQ8(long[] mask, int mOff, byte[] v, short[] scales, int sOff, int p, float[] x, int xOff, int cols) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int c = 0;
        if (L == 16) {
            int words = cols >>> 6;
            for (int k = 0; k < words; k++, c += 64) {
                long m = mask[mOff + k];
                float s0 = Float.float16ToFloat(scales[sOff + 2 * k]), s1 = Float.float16ToFloat(scales[sOff + 2 * k + 1]);
                int p1 = p + Long.bitCount(m & 0xffffL), p2 = p + Long.bitCount(m & 0xffffffffL), p3 = p + Long.bitCount(m & 0xffffffffffffL);
                a0 = bytes(v, p).mul(s0).expand(VectorMask.fromLong(F, m)).fma(FloatVector.fromArray(F, x, xOff + c), a0);
                a1 = bytes(v, p1).mul(s0).expand(VectorMask.fromLong(F, m >>> 16)).fma(FloatVector.fromArray(F, x, xOff + c + 16), a1);
                a2 = bytes(v, p2).mul(s1).expand(VectorMask.fromLong(F, m >>> 32)).fma(FloatVector.fromArray(F, x, xOff + c + 32), a2);
                a3 = bytes(v, p3).mul(s1).expand(VectorMask.fromLong(F, m >>> 48)).fma(FloatVector.fromArray(F, x, xOff + c + 48), a3);
                p += Long.bitCount(m);
            }
        } else if (L <= Q8_GROUP) {
            int full = cols - cols % Q8_GROUP;
            for (; c < full; c += L) {
                long m = (mask[mOff + (c >>> 6)] >>> (c & 63)) & CHUNK_MASK;
                float sc = Float.float16ToFloat(scales[sOff + c / Q8_GROUP]);
                a0 = bytes(v, p).mul(sc).expand(VectorMask.fromLong(F, m)).fma(FloatVector.fromArray(F, x, xOff + c), a0);
                p += Long.bitCount(m);
            }
        }
        float s = a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
        for (; c < cols; c++) {
            if ((mask[mOff + (c >>> 6)] >>> (c & 63) & 1) != 0) s += Float.float16ToFloat(scales[sOff + c / Q8_GROUP]) * v[p++] * x[xOff + c];
        }
        return s;
    }

    /** Expands packed F32 values into a dense row {@code dst[off..off+cols)} (zeros where the mask is clear). */
    static void expandF32(long[] mask, int mOff, float[] v, int p, float[] dst, int off, int cols) {
        int full = cols - cols % L, c = 0;
        for (; c < full; c += L) {
            long m = (mask[mOff + (c >>> 6)] >>> (c & 63)) & CHUNK_MASK;
            FloatVector.fromArray(F, v, p).expand(VectorMask.fromLong(F, m)).intoArray(dst, off + c);
            p += Long.bitCount(m);
        }
        for (; c < cols; c++) dst[off + c] = (mask[mOff + (c >>> 6)] >>> (c & 63) & 1) != 0 ? v[p++] : 0f;
    }

    /** Q8: expands int8 values times their group scale into a dense row. */
    static void expandQ8(long[] mask, int mOff, byte[] v, short[] scales, int sOff, int p, float[] dst, int off, int cols) {
        int c = 0;
        if (L <= Q8_GROUP) {
            int full = cols - cols % Q8_GROUP;
            for (; c < full; c += L) {
                long m = (mask[mOff + (c >>> 6)] >>> (c & 63)) & CHUNK_MASK;
                float sc = Float.float16ToFloat(scales[sOff + c / Q8_GROUP]);
                bytes(v, p).mul(sc).expand(VectorMask.fromLong(F, m)).intoArray(dst, off + c);
                p += Long.bitCount(m);
            }
        }
        for (; c < cols; c++) {
            dst[off + c] = (mask[mOff + (c >>> 6)] >>> (c & 63) & 1) != 0 ? Float.float16ToFloat(scales[sOff + c / Q8_GROUP]) * v[p++] : 0f;
        }
    }

    /** Widens {@code count} F16/BF16 values of {@code v} from value index p into {@code buf} (the dense layer's loops). */
    static void widen(MemorySegment v, boolean bf16, int p, int count, float[] buf) {
        if (bf16) {
            VectorKernels.widenBf16(v, 2L * p, buf, count);
        } else {
            VectorKernels.widenF16(v, 2L * p, buf, count);
        }
    }

    static float half(short h, boolean bf16) {
        return bf16 ? Float.intBitsToFloat((h & 0xffff) << 16) : Float.float16ToFloat(h);
    }
}
