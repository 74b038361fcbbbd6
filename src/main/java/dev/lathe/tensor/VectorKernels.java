package dev.lathe.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/** Vector API dot products of stored F32/F16/BF16 rows with float activations. */
public final class VectorKernels {
    public static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> S_HALF = F.length() == 16 ? ShortVector.SPECIES_256 : F.length() == 8 ? ShortVector.SPECIES_128 : ShortVector.SPECIES_64;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private VectorKernels() {}

    // one constant shuffle per folding step and width: C2 intrinsifies rearrange only with a constant shuffle
    private static final VectorShuffle<Float> F16_8 = fold(FloatVector.SPECIES_512, 8), F16_4 = fold(FloatVector.SPECIES_512, 4),
            F16_2 = fold(FloatVector.SPECIES_512, 2), F16_1 = fold(FloatVector.SPECIES_512, 1);
    private static final VectorShuffle<Float> F8_4 = fold(FloatVector.SPECIES_256, 4), F8_2 = fold(FloatVector.SPECIES_256, 2),
            F8_1 = fold(FloatVector.SPECIES_256, 1);
    private static final VectorShuffle<Float> F4_2 = fold(FloatVector.SPECIES_128, 2), F4_1 = fold(FloatVector.SPECIES_128, 1);

    private static VectorShuffle<Float> fold(VectorSpecies<Float> s, int step) {
        int n = s.length();
        return VectorShuffle.fromOp(s, i -> (i + step) % n);
    }

    /**
     * Widens {@code n} little-endian F16 values at byte offset {@code off} into {@code w[0..n)}: a plain loop that
     * C2 compiles to vcvtph2ps (7-12 GB/s of F16 per core in a 5632x2048 matvec, measured while shared), where one
     * method holding Vector API F16 and BF16 variants was not fully inlined and ran at about 1 GB/s.
     */
    public static void widenF16(MemorySegment data, long off, float[] w, int n) {
        for (int i = 0; i < n; i++) w[i] = Float.float16ToFloat(data.get(Tensor.I16_LE, off + 2L * i));
    }

    /** As {@link #widenF16} for BF16 values (the high 16 bits of an F32). */
    public static void widenBf16(MemorySegment data, long off, float[] w, int n) {
        int i = 0, L = F.length();
        for (; i + L <= n; i += L) {
            IntVector h = (IntVector) ShortVector.fromMemorySegment(S_HALF, data, off + 2L * i, LE).convertShape(VectorOperators.ZERO_EXTEND_S2I, I, 0);
            h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(w, i);
        }
        for (; i < n; i++) w[i] = Float.intBitsToFloat(data.get(Tensor.I16_LE, off + 2L * i) << 16);
    }

    /**
     * Sum of the lanes in a fixed pairwise order (lane i plus lane i + L/2, then + L/4, ...). {@code
     * reduceLanes(ADD)} leaves the order open, and the interpreter, C1 and C2 do differ, so the same
     * computation gave different bits over a run (GPTQ's Hessians, and so its output, changed from run to run).
     */
    public static float sum(FloatVector v) {
        switch (v.length()) {
            case 16 -> {
                v = v.add(v.rearrange(F16_8));
                v = v.add(v.rearrange(F16_4));
                v = v.add(v.rearrange(F16_2));
                v = v.add(v.rearrange(F16_1));
                return v.lane(0);
            }
            case 8 -> {
                v = v.add(v.rearrange(F8_4));
                v = v.add(v.rearrange(F8_2));
                v = v.add(v.rearrange(F8_1));
                return v.lane(0);
            }
            case 4 -> {
                v = v.add(v.rearrange(F4_2));
                v = v.add(v.rearrange(F4_1));
                return v.lane(0);
            }
            default -> {
                float[] a = v.toArray();
                for (int step = a.length / 2; step >= 1; step /= 2) {
                    for (int i = 0; i < step; i++) a[i] += a[i + step];
                }
                return a[0];
            }
        }
    }

    public static float dotF32(MemorySegment w, long offset, float[] x, int xOff, int n) {
        int i = 0;
        FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
        int L = F.length();
        for (; i + 2 * L <= n; i += 2 * L) {
            acc0 = FloatVector.fromMemorySegment(F, w, offset + 4L * i, LE).fma(FloatVector.fromArray(F, x, xOff + i), acc0);
            acc1 = FloatVector.fromMemorySegment(F, w, offset + 4L * (i + L), LE).fma(FloatVector.fromArray(F, x, xOff + i + L), acc1);
        }
        float s = sum(acc0.add(acc1));
        for (; i < n; i++) s += w.get(Tensor.F32_LE, offset + 4L * i) * x[xOff + i];
        return s;
    }

    public static float dotF32(float[] a, int aOff, float[] b, int bOff, int n) {
        int i = 0;
        FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
        int L = F.length();
        for (; i + 2 * L <= n; i += 2 * L) {
            acc0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), acc0);
            acc1 = FloatVector.fromArray(F, a, aOff + i + L).fma(FloatVector.fromArray(F, b, bOff + i + L), acc1);
        }
        float s = sum(acc0.add(acc1));
        for (; i < n; i++) s += a[aOff + i] * b[bOff + i];
        return s;
    }

    public static float dotF16(MemorySegment w, long offset, float[] x, int xOff, int n) {
        int i = 0;
        int L = F.length();
        FloatVector acc = FloatVector.zero(F);
        for (; i + L <= n; i += L) {
            ShortVector h = ShortVector.fromMemorySegment(S_HALF, w, offset + 2L * i, LE);
            IntVector iv = (IntVector) h.convertShape(VectorOperators.ZERO_EXTEND_S2I, I, 0);
            acc = halfToFloat(iv).fma(FloatVector.fromArray(F, x, xOff + i), acc);
        }
        float s = sum(acc);
        for (; i < n; i++) s += Float.float16ToFloat(w.get(Tensor.I16_LE, offset + 2L * i)) * x[xOff + i];
        return s;
    }

    /**
     * IEEE half bits (zero-extended in int lanes) to floats: shifting exponent and mantissa into place and
     * multiplying by 2^112 rebiases the exponent and handles subnormals exactly. Inf/NaN halves become
     * large finite values; loaders reject non-finite weights beforehand.
     */
    public static FloatVector halfToFloat(IntVector h) {
        IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
        IntVector em = h.and(0x7fff).lanewise(VectorOperators.LSHL, 13);
        FloatVector mag = em.reinterpretAsFloats().mul(0x1p112f);
        return mag.reinterpretAsInts().or(sign).reinterpretAsFloats();
    }

    public static float dotBf16(MemorySegment w, long offset, float[] x, int xOff, int n) {
        int i = 0;
        int L = F.length();
        FloatVector acc = FloatVector.zero(F);
        for (; i + L <= n; i += L) {
            ShortVector h = ShortVector.fromMemorySegment(S_HALF, w, offset + 2L * i, LE);
            IntVector iv = (IntVector) h.convertShape(VectorOperators.ZERO_EXTEND_S2I, I, 0);
            FloatVector wf = iv.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            acc = wf.fma(FloatVector.fromArray(F, x, xOff + i), acc);
        }
        float s = sum(acc);
        for (; i < n; i++) s += Float16.bf16ToFloat(w.get(Tensor.I16_LE, offset + 2L * i)) * x[xOff + i];
        return s;
    }
}
