package dev.lathe.prune;

import dev.lathe.tensor.VectorKernels;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

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
    static final VectorSpecies<Short> S = L == 16 ? ShortVector.SPECIES_256 : L == 8 ? ShortVector.SPECIES_128 : ShortVector.SPECIES_64;
    static final VectorSpecies<Byte> B = L == 16 ? ByteVector.SPECIES_128 : L == 8 ? ByteVector.SPECIES_64 : ByteVector.SPECIES_64;
    static final VectorSpecies<Integer> I = L == 16 ? IntVector.SPECIES_512 : L == 8 ? IntVector.SPECIES_256 : IntVector.SPECIES_128;
    static final int Q8_GROUP = 32;
    static final long CHUNK_MASK = L == 64 ? -1L : (1L << L) - 1;

    static float dotF32(long[] mask, int mOff, float[] v, int p, float[] x, int xOff, int cols) {
        FloatVector acc = FloatVector.zero(F);
        int full = cols - cols % L;
        int c = 0;
        for (; c < full; c += L) {
            long m = (mask[mOff + (c >>> 6)] >>> (c & 63)) & CHUNK_MASK;
            if (m == 0) continue;
            VectorMask<Float> vm = VectorMask.fromLong(F, m);
            FloatVector w = FloatVector.fromArray(F, v, p).expand(vm);
            acc = w.fma(FloatVector.fromArray(F, x, xOff + c), acc);
            p += Long.bitCount(m);
        }
        float s = acc.reduceLanes(VectorOperators.ADD);
        for (; c < cols; c++) {
            if ((mask[mOff + (c >>> 6)] >>> (c & 63) & 1) != 0) s += v[p++] * x[xOff + c];
        }
        return s;
    }

    static float dotHalf(long[] mask, int mOff, short[] v, boolean bf16, int p, float[] x, int xOff, int cols) {
        FloatVector acc = FloatVector.zero(F);
        int full = cols - cols % L;
        int c = 0;
        for (; c < full; c += L) {
            long m = (mask[mOff + (c >>> 6)] >>> (c & 63)) & CHUNK_MASK;
            if (m == 0) continue;
            VectorMask<Float> vm = VectorMask.fromLong(F, m);
            IntVector h = (IntVector) ShortVector.fromArray(S, v, p).convertShape(VectorOperators.ZERO_EXTEND_S2I, I, 0);
            FloatVector w = bf16 ? h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats() : VectorKernels.halfToFloat(h);
            acc = w.expand(vm).fma(FloatVector.fromArray(F, x, xOff + c), acc);
            p += Long.bitCount(m);
        }
        float s = acc.reduceLanes(VectorOperators.ADD);
        for (; c < cols; c++) {
            if ((mask[mOff + (c >>> 6)] >>> (c & 63) & 1) != 0) s += half(v[p++], bf16) * x[xOff + c];
        }
        return s;
    }

    /** Q8: {@code scales} holds one F16 scale per {@value #Q8_GROUP} columns of the row, from {@code sOff}. */
    static float dotQ8(long[] mask, int mOff, byte[] v, short[] scales, int sOff, int p, float[] x, int xOff, int cols) {
        float s = 0;
        int c = 0;
        if (L <= Q8_GROUP) {
            int full = cols - cols % Q8_GROUP;
            for (; c < full; c += Q8_GROUP) {
                FloatVector acc = FloatVector.zero(F);
                boolean any = false;
                for (int cc = c; cc < c + Q8_GROUP; cc += L) {
                    long m = (mask[mOff + (cc >>> 6)] >>> (cc & 63)) & CHUNK_MASK;
                    if (m == 0) continue;
                    any = true;
                    VectorMask<Float> vm = VectorMask.fromLong(F, m);
                    FloatVector w = ((FloatVector) ByteVector.fromArray(B, v, p).convertShape(VectorOperators.B2F, F, 0)).expand(vm);
                    acc = w.fma(FloatVector.fromArray(F, x, xOff + cc), acc);
                    p += Long.bitCount(m);
                }
                if (any) s += Float.float16ToFloat(scales[sOff + c / Q8_GROUP]) * acc.reduceLanes(VectorOperators.ADD);
            }
        }
        for (; c < cols; c++) {
            if ((mask[mOff + (c >>> 6)] >>> (c & 63) & 1) != 0) s += Float.float16ToFloat(scales[sOff + c / Q8_GROUP]) * v[p++] * x[xOff + c];
        }
        return s;
    }

    static float half(short h, boolean bf16) {
        return bf16 ? Float.intBitsToFloat((h & 0xffff) << 16) : Float.float16ToFloat(h);
    }

    /** Dense dots of {@code rows} decoded weight rows (in {@code w}) with input row {@code x[xOff..]}. */
    static void dense4Offset(float[] w, int wOff, int cols, float[] x, int xOff, float[] y) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int c = 0, full = cols - cols % L;
        for (; c < full; c += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xOff + c);
            a0 = FloatVector.fromArray(F, w, wOff + c).fma(xv, a0);
            a1 = FloatVector.fromArray(F, w, wOff + cols + c).fma(xv, a1);
            a2 = FloatVector.fromArray(F, w, wOff + 2 * cols + c).fma(xv, a2);
            a3 = FloatVector.fromArray(F, w, wOff + 3 * cols + c).fma(xv, a3);
        }
        float s0 = a0.reduceLanes(VectorOperators.ADD), s1 = a1.reduceLanes(VectorOperators.ADD);
        float s2 = a2.reduceLanes(VectorOperators.ADD), s3 = a3.reduceLanes(VectorOperators.ADD);
        for (; c < cols; c++) {
            float xv = x[xOff + c];
            s0 += w[wOff + c] * xv;
            s1 += w[wOff + cols + c] * xv;
            s2 += w[wOff + 2 * cols + c] * xv;
            s3 += w[wOff + 3 * cols + c] * xv;
        }
        y[0] = s0;
        y[1] = s1;
        y[2] = s2;
        y[3] = s3;
    }

    static float dense1(float[] w, int wOff, int cols, float[] x, int xOff) {
        return VectorKernels.dotF32(w, wOff, x, xOff, cols);
    }
}
