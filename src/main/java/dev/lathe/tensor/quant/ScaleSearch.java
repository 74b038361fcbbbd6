package dev.lathe.tensor.quant;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import static dev.lathe.tensor.quant.QuantMath.GROUP_MAX_EPS;
import static dev.lathe.tensor.quant.QuantMath.nearestInt;
import static dev.lathe.tensor.quant.QuantMath.qxWeight;

/**
 * The candidate-scale searches of make_qx_quants and make_qkx2/qkx3_quants with one candidate scale per vector
 * lane, bit-for-bit equal to {@link QuantMath#makeQxQuantsScalar} and {@link QuantMath#makeQkxQuantsScalar}.
 * Each lane performs the scalar version's sequence of IEEE single operations for its candidate, over the values
 * in the same order (separate multiply and add, never fused; the only liberty taken is swapping the operands of a
 * + or a *, which is exact), so its sums, scale and min have the same bits. The scalar loop's sequential choice
 * of the best candidate (strict comparisons against a running best, in candidate order) is then replayed on the
 * per-lane results, and the levels of the winner are computed once more at the end.
 *
 * <p>make_qkx's candidates are not independent: when one wins, its min replaces the min that the following
 * candidates quantize with (ggml's loop does the same). A group of lanes is computed with the min in force at
 * its first candidate and holds up to the first winner that changes the min; the next group starts at the
 * candidate after that winner. Gaussian blocks with importance weights have about 3.5 such winners among
 * make_qkx3's 37 candidates (the first candidate wins in ~45% of blocks; a winner's successor wins in ~44% of
 * cases), so the search costs ~7.6 groups of 8 lanes (~5.7 of 16) instead of 37 scalar passes.
 *
 * <p>The vector code lives in small methods that take and return no vectors (results go through a float
 * array): C2 stops inlining Vector API calls past its node budget (NodeCountInliningCutoff) and then boxes
 * every vector, which made a first version with both passes and the replay in one method slower than scalar.
 */
final class ScaleSearch {
    private ScaleSearch() {}

    /**
     * 8 lanes also where 16 are available: make_qkx's groups use ~6.5 lanes on average (see the class comment),
     * and on the AVX-512 machine measured a 256-bit operation costs half a 512-bit one.
     */
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_256;
    private static final int VL = F.length();
    /** Whether the vectors are native (with 128-bit vectors the 256-bit species would be emulated). */
    static final boolean WORTHWHILE = FloatVector.SPECIES_PREFERRED.vectorBitSize() >= 256;
    /** Lane numbers 0, 1, 2, ... as floats. */
    private static final FloatVector IOTA = FloatVector.zero(F).addIndex(1);
    private static final float MAGIC = 12582912.f;
    /** make_qx_quants' candidates as its is: the first fit (0), then -9..-1 and 1..9; padded to whole vectors. */
    private static final int QX_CANDIDATES = 19;
    private static final float[] QX_STEPS = new float[(QX_CANDIDATES + VL - 1) / VL * VL];

    static {
        int c = 1;
        for (int is = -9; is <= 9; ++is) {
            if (is != 0) QX_STEPS[c++] = is;
        }
    }

    /** nearest_int of every lane (ggml's magic-number rounding read from the bits), clamped to [lo, hi], as floats. */
    private static FloatVector levels(FloatVector v, int lo, int hi) {
        IntVector i = v.add(MAGIC).reinterpretAsInts().and(0x007fffff).sub(0x00400000).max(lo).min(hi);
        return (FloatVector) i.convert(VectorOperators.I2F, 0);
    }

    /** make_qx_quants for rmseType > 0; see {@link QuantMath#makeQxQuantsScalar}. */
    static float makeQxQuants(int n, int nmax, float[] x, int xo, byte[] L, int lo, int rmseType, float[] qw, int qo) {
        float max = 0;
        float amax = 0;
        for (int i = 0; i < n; ++i) {
            float ax = Math.abs(x[xo + i]);
            if (ax > amax) { amax = ax; max = x[xo + i]; }
        }
        if (amax < GROUP_MAX_EPS) {
            for (int i = 0; i < n; ++i) L[lo + i] = 0;
            return 0.f;
        }
        float[] sums = new float[2 * QX_STEPS.length];
        for (int c0 = 0; c0 < QX_STEPS.length; c0 += VL) qxGroup(n, nmax, x, xo, rmseType, qw, qo, max, c0, sums);
        int suml2At = QX_STEPS.length;
        // the scalar loop's choice, candidate by candidate: the first fit, then is = -9..-1, 1..9
        float scale = sums[suml2At] != 0 ? sums[0] / sums[suml2At] : 0.0f;
        float best = scale * sums[0];
        float iscale = (float) -nmax / max;
        for (int c = 1; c < QX_CANDIDATES; ++c) {
            float sumlx = sums[c], suml2 = sums[suml2At + c];
            if (suml2 > 0 && sumlx * sumlx > best * suml2) {
                iscale = -(nmax + 0.1f * QX_STEPS[c]) / max;
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        for (int i = 0; i < n; ++i) {
            int l = nearestInt(iscale * x[xo + i]);
            L[lo + i] = (byte) (nmax + Math.max(-nmax, Math.min(nmax - 1, l)));
        }
        return scale;
    }

    /**
     * make_qx_quants' sums for the candidates c0, c0+1, ... (one vector): sumlx into sums[c], suml2 into
     * sums[QX_STEPS.length + c].
     */
    private static void qxGroup(int n, int nmax, float[] x, int xo, int rmseType, float[] qw, int qo, float max, int c0, float[] sums) {
        // iscale = -(nmax + 0.1f * is) / max; for is = 0 that is the first fit's (float) -nmax / max
        FloatVector iscale = FloatVector.fromArray(F, QX_STEPS, c0).mul(0.1f).add((float) nmax).neg().div(max);
        FloatVector sumlx = FloatVector.zero(F), suml2 = FloatVector.zero(F);
        for (int i = 0; i < n; ++i) {
            float xi = x[xo + i];
            float w = qxWeight(qw, qo + i, xi, rmseType);
            FloatVector l = levels(iscale.mul(xi), -nmax, nmax - 1);
            sumlx = sumlx.add(l.mul(w * xi));
            suml2 = suml2.add(l.mul(w).mul(l));
        }
        sumlx.intoArray(sums, c0);
        suml2.intoArray(sums, QX_STEPS.length + c0);
    }

    /** make_qkx2/qkx3_quants for nstep >= 1; see {@link QuantMath#makeQkxQuantsScalar}. */
    static float makeQkxQuants(boolean qkx3, int n, int nmax, float[] x, int xo, float[] weights, int wo,
                               byte[] L, int lo, float[] theMin, int tmo,
                               float rmin, float rdelta, int nstep, boolean useMad) {
        float min = x[xo];
        float max = x[xo];
        float sumW = weights != null ? weights[wo] : x[xo] * x[xo];
        float sumX = sumW * x[xo];
        for (int i = 1; i < n; ++i) {
            float xi = x[xo + i];
            if (xi < min) min = xi;
            if (xi > max) max = xi;
            float w = weights != null ? weights[wo + i] : xi * xi;
            sumW += w;
            sumX += w * xi;
        }
        if (min > 0) min = 0;
        if (qkx3 ? max <= min : max == min) {
            for (int i = 0; i < n; ++i) L[lo + i] = 0;
            theMin[tmo] = -min;
            return 0.f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestMad = 0;
        for (int i = 0; i < n; ++i) {
            float xi = x[xo + i];
            int l = nearestInt(iscale * (xi - min));
            l = Math.max(0, Math.min(nmax, l));
            L[lo + i] = (byte) l;
            float diff = scale * l + min - xi;
            diff = useMad ? Math.abs(diff) : diff * diff;
            float w = weights != null ? weights[wo + i] : xi * xi;
            bestMad += w * diff;
        }
        float[] r = new float[(4 + n) * VL];
        int win = -1;
        float winMin = 0;
        for (int s = 0; s <= nstep; ) {
            qkxFit(n, nmax, x, xo, weights, wo, min, max, sumW, sumX, rmin, rdelta, s, r);
            qkxMad(n, x, xo, weights, wo, useMad, r);
            int next = s + VL;
            // the scalar loop's choice for is = s, s+1, ... up to the first winner that moves the min: the
            // lanes after it quantized with the old min, so the next group starts after it
            for (int k = 0, end = Math.min(VL, nstep + 1 - s); k < end; ++k) {
                float mad = r[k], thisScale = r[VL + k], thisMin = r[2 * VL + k], d = r[3 * VL + k];
                if (d > 0 && mad < bestMad) {
                    bestMad = mad;
                    scale = thisScale;
                    win = s + k;
                    winMin = min;
                    if (Float.floatToRawIntBits(thisMin) != Float.floatToRawIntBits(min)) {
                        min = thisMin;
                        next = s + k + 1;
                        break;
                    }
                }
            }
            s = next;
        }
        if (win >= 0) {
            iscale = (rmin + rdelta * win + nmax) / (max - winMin);
            for (int i = 0; i < n; ++i) {
                int l = nearestInt(iscale * (x[xo + i] - winMin));
                L[lo + i] = (byte) Math.max(0, Math.min(nmax, l));
            }
        }
        theMin[tmo] = -min;
        return scale;
    }

    /** iscale = (rmin + rdelta * is + nmax) / (max - min) of make_qkx's candidates is = s, s+1, ... */
    private static FloatVector qkxIscales(int nmax, float min, float max, float rmin, float rdelta, int s) {
        return IOTA.add((float) s).mul(rdelta).add(rmin).add((float) nmax).div(max - min);
    }

    /**
     * The first pass of make_qkx's candidates is = s, s+1, ... (one vector) quantized with min: this_scale,
     * this_min and D of every lane into r[VL..2VL), r[2VL..3VL) and r[3VL..4VL), the levels of value i into
     * r[(4+i)VL..(5+i)VL) for the second pass.
     */
    private static void qkxFit(int n, int nmax, float[] x, int xo, float[] weights, int wo, float min, float max,
                               float sumW, float sumX, float rmin, float rdelta, int s, float[] r) {
        FloatVector iscale = qkxIscales(nmax, min, max, rmin, rdelta, s);
        FloatVector sumL = FloatVector.zero(F), sumL2 = FloatVector.zero(F), sumXl = FloatVector.zero(F);
        for (int i = 0; i < n; ++i) {
            float xi = x[xo + i];
            float w = weights != null ? weights[wo + i] : xi * xi;
            FloatVector l = levels(iscale.mul(xi - min), 0, nmax);
            l.intoArray(r, (4 + i) * VL);
            FloatVector wl = l.mul(w);
            sumL = sumL.add(wl);
            sumL2 = sumL2.add(wl.mul(l));
            sumXl = sumXl.add(wl.mul(xi));
        }
        FloatVector d = sumL2.mul(sumW).sub(sumL.mul(sumL));
        FloatVector thisScale = sumXl.mul(sumW).sub(sumL.mul(sumX)).div(d);
        FloatVector thisMin = sumL2.mul(sumX).sub(sumL.mul(sumXl)).div(d);
        VectorMask<Float> positive = thisMin.compare(VectorOperators.GT, 0f);
        thisScale.blend(sumXl.div(sumL2), positive).intoArray(r, VL);
        thisMin.blend(0f, positive).intoArray(r, 2 * VL);
        d.intoArray(r, 3 * VL);
    }

    /** The second pass: the weighted error (mad) of every lane's levels with its fit into r[0..VL). */
    private static void qkxMad(int n, float[] x, int xo, float[] weights, int wo, boolean useMad, float[] r) {
        FloatVector thisScale = FloatVector.fromArray(F, r, VL), thisMin = FloatVector.fromArray(F, r, 2 * VL);
        FloatVector mad = FloatVector.zero(F);
        for (int i = 0; i < n; ++i) {
            float xi = x[xo + i];
            float w = weights != null ? weights[wo + i] : xi * xi;
            FloatVector l = FloatVector.fromArray(F, r, (4 + i) * VL);
            FloatVector diff = thisScale.mul(l).add(thisMin).sub(xi);
            diff = useMad ? diff.abs() : diff.mul(diff);
            mad = mad.add(diff.mul(w));
        }
        mad.intoArray(r, 0);
    }
}
