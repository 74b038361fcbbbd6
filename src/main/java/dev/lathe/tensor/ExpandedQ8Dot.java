package dev.lathe.tensor;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A weight type whose activations are Q8_0 (Q4_0, Q8_0) and which can also dot with those activations
 * <em>expanded</em>: the int8 quants as floats ({@code xf}, one per value) and the fp16 block scales as
 * floats ({@code xd}, one per 32 values), see {@link #expand}. Expanding once per matmul removes the
 * per-weight-row widening and conversion of the activations from the inner loop. The products of quants are
 * exact in float, so the result equals {@link ActivationQuantizedCodec#dotQuantized} on the unexpanded
 * activations: bit for bit with 16-lane float vectors (AVX-512), to within float rounding otherwise.
 */
public interface ExpandedQ8Dot extends ActivationQuantizedCodec {
    /** Dot of {@code n} stored weights at {@code wOff} with expanded Q8_0 activations. */
    float dotExpanded(MemorySegment w, long wOff, float[] xf, int xfOff, float[] xd, int xdOff, int n);

    /**
     * Expands {@code n} Q8_0 activations at {@code xq + off} into {@code xf[xfOff ..]} (quants as floats) and
     * {@code xd[xdOff ..]} (block scales as floats).
     */
    static void expand(MemorySegment xq, long off, int n, float[] xf, int xfOff, float[] xd, int xdOff) {
        if (n % 32 != 0) throw new IllegalArgumentException("Q8_0 activations need a multiple of 32 values, got " + n);
        VectorSpecies<Byte> b16 = ByteVector.SPECIES_128;
        VectorSpecies<Integer> is = IntVector.SPECIES_PREFERRED.length() >= 16 ? IntVector.SPECIES_512 : null;
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long o = off + 34L * b;
            xd[xdOff + b] = Float.float16ToFloat(xq.get(I16, o));
            int xo = xfOff + 32 * b;
            if (is != null) {
                for (int h = 0; h < 2; h++) {
                    ByteVector q = ByteVector.fromMemorySegment(b16, xq, o + 2 + 16 * h, ByteOrder.LITTLE_ENDIAN);
                    ((FloatVector) ((IntVector) q.convertShape(VectorOperators.B2I, is, 0)).convert(VectorOperators.I2F, 0)).intoArray(xf, xo + 16 * h);
                }
            } else {
                for (int j = 0; j < 32; j++) xf[xo + j] = xq.get(ValueLayout.JAVA_BYTE, o + 2 + j);
            }
        }
    }

    ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
}
