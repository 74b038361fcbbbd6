package dev.lathe.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
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

    public static float dotF32(MemorySegment w, long offset, float[] x, int xOff, int n) {
        int i = 0;
        FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
        int L = F.length();
        for (; i + 2 * L <= n; i += 2 * L) {
            acc0 = FloatVector.fromMemorySegment(F, w, offset + 4L * i, LE).fma(FloatVector.fromArray(F, x, xOff + i), acc0);
            acc1 = FloatVector.fromMemorySegment(F, w, offset + 4L * (i + L), LE).fma(FloatVector.fromArray(F, x, xOff + i + L), acc1);
        }
        float s = acc0.add(acc1).reduceLanes(VectorOperators.ADD);
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
        float s = acc0.add(acc1).reduceLanes(VectorOperators.ADD);
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
        float s = acc.reduceLanes(VectorOperators.ADD);
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
        float s = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) s += Float16.bf16ToFloat(w.get(Tensor.I16_LE, offset + 2L * i)) * x[xOff + i];
        return s;
    }
}
