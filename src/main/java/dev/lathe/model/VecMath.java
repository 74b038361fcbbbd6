package dev.lathe.model;

import dev.lathe.tensor.VectorKernels;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * A vectorized single-precision exp (Cephes-style: range reduction by ln 2, degree-6 polynomial, exponent
 * bits), about 2 ulp. Unlike {@code lanewise(EXP)} it gives the same bits in the interpreter, in compiled
 * code and in the scalar version used for loop tails, so two runs of the same forward pass agree exactly.
 */
final class VecMath {
    private static final VectorSpecies<Float> F = VectorKernels.F;
    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float MAX = 88.7228391f;
    private static final float MIN = -87.3365447f;
    private static final float ROUND = 12582912f; // 1.5 * 2^23
    private static final float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f,
            P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    private VecMath() {}

    /** Sum of the lanes in a fixed pairwise order ({@link VectorKernels#sum}). */
    static float sum(FloatVector v) {
        return VectorKernels.sum(v);
    }

    static FloatVector exp(FloatVector x) {
        VectorMask<Float> over = x.compare(VectorOperators.GT, MAX);
        VectorMask<Float> under = x.compare(VectorOperators.LT, MIN);
        FloatVector xc = x.max(MIN).min(MAX);
        FloatVector n = xc.mul(LOG2E).add(ROUND).sub(ROUND);
        FloatVector r = n.fma(FloatVector.broadcast(F, -LN2_HI), xc);
        r = n.fma(FloatVector.broadcast(F, -LN2_LO), r);
        FloatVector p = r.fma(P0, P1);
        p = p.fma(r, FloatVector.broadcast(F, P2));
        p = p.fma(r, FloatVector.broadcast(F, P3));
        p = p.fma(r, FloatVector.broadcast(F, P4));
        p = p.fma(r, FloatVector.broadcast(F, P5));
        FloatVector r2 = r.mul(r);
        FloatVector y = p.fma(r2, r).add(1f);
        IntVector e = ((IntVector) n.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23);
        FloatVector res = y.mul(e.reinterpretAsFloats());
        res = res.blend(0f, under);
        res = res.blend(Float.POSITIVE_INFINITY, over);
        return res.blend(x, x.test(VectorOperators.IS_NAN));
    }

    /** The same computation for one value. */
    static float exp(float x) {
        if (Float.isNaN(x)) return x;
        if (x > MAX) return Float.POSITIVE_INFINITY;
        if (x < MIN) return 0f;
        float n = x * LOG2E + ROUND - ROUND;
        float r = Math.fma(n, -LN2_HI, x);
        r = Math.fma(n, -LN2_LO, r);
        float p = Math.fma(r, P0, P1);
        p = Math.fma(p, r, P2);
        p = Math.fma(p, r, P3);
        p = Math.fma(p, r, P4);
        p = Math.fma(p, r, P5);
        float r2 = r * r;
        float y = Math.fma(p, r2, r) + 1f;
        return y * Float.intBitsToFloat(((int) n + 127) << 23);
    }
}
