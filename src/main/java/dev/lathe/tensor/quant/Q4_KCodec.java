package dev.lathe.tensor.quant;

import dev.lathe.tensor.FloatRowDot;
import dev.lathe.tensor.GgmlType;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.lathe.tensor.quant.QuantMath.*;

/**
 * Q4_K: super-blocks of 256 = 8 sub-blocks of 32 with 6-bit scales and mins; layout fp16 d, fp16 dmin,
 * scales[12], qs[128] (144 bytes). Mirrors ggml-quants.c quantize_row_q4_K_ref (make_qkx2_quants),
 * quantize_row_q4_K_impl (importance: make_qkx3_quants + make_qp_quants), dequantize_row_q4_K and
 * ggml_vec_dot_q4_K_q8_K.
 */
public final class Q4_KCodec extends QuantCodec implements FloatRowDot {
    public Q4_KCodec() {
        super(GgmlType.Q4_K, 0, 2);
    }

    @Override
    public GgmlType activationType() {
        return GgmlType.Q8_K;
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float d = halfAt(s, o), min = halfAt(s, o + 2);
        long q = o + 16;
        int is = 0;
        for (int j = 0; j < 256; j += 64) {
            float d1 = d * scaleK4(is, s, o + 4), m1 = min * minK4(is, s, o + 4);
            float d2 = d * scaleK4(is + 1, s, o + 4), m2 = min * minK4(is + 1, s, o + 4);
            for (int l = 0; l < 32; ++l) y[yo++] = d1 * (u8(s, q + l) & 0xF) - m1;
            for (int l = 0; l < 32; ++l) y[yo++] = d2 * (u8(s, q + l) >> 4) - m2;
            q += 32;
            is += 2;
        }
    }

    /** Shared tail of the K4/K5 quantizers: quantizes x with the stored 6-bit scales/mins into L. */
    static void requantizeK(float[] x, int xb, byte[] sc12, float dAll, float mAll, byte[] L, int nmax) {
        for (int j = 0; j < 8; ++j) {
            float d = dAll * scaleK4(j, sc12);
            if (d == 0) continue;
            float dm = mAll * minK4(j, sc12);
            for (int ii = 0; ii < 32; ++ii) {
                int l = nearestInt((x[xb + 32 * j + ii] + dm) / d);
                L[32 * j + ii] = (byte) Math.max(0, Math.min(nmax, l));
            }
        }
    }

    /** Scale search of quantize_row_q4_K_ref / q5_K_ref: 6-bit scales and mins from per-sub-block fits. */
    static void refScales(float[] x, int xb, int nmax, float rmin, float rdelta, int nstep, byte[] L, byte[] sc12, short[] dOut) {
        float[] weights = new float[32], mins = new float[8], scales = new float[8];
        byte[] laux = new byte[32];
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; ++j) {
            float sumX2 = 0;
            for (int l = 0; l < 32; ++l) sumX2 += x[xb + 32 * j + l] * x[xb + 32 * j + l];
            float avX = sqrtf(sumX2 / 32);
            for (int l = 0; l < 32; ++l) weights[l] = avX + Math.abs(x[xb + 32 * j + l]);
            scales[j] = makeQkxQuants(false, 32, nmax, x, xb + 32 * j, weights, 0, L, 32 * j, mins, j, laux, rmin, rdelta, nstep, false);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        float invScale = maxScale > 0 ? 63.f / maxScale : 0.f;
        float invMin = maxMin > 0 ? 63.f / maxMin : 0.f;
        int[] ls = new int[8], lm = new int[8];
        for (int j = 0; j < 8; ++j) {
            ls[j] = Math.min(63, nearestInt(invScale * scales[j]) & 0xff);
            lm[j] = Math.min(63, nearestInt(invMin * mins[j]) & 0xff);
        }
        packScalesK4(sc12, ls, lm);
        dOut[0] = fp16(maxScale / 63.f);
        dOut[1] = fp16(maxMin / 63.f);
    }

    /** Scale search of quantize_row_q4_K_impl / q5_K_impl (qw may be null: weights av_x + |x|). */
    static void implScales(float[] x, int xb, float[] qw, int qo, int nmax, byte[] L, byte[] sc12, short[] dOut, boolean clamp63) {
        float[] weights = new float[32], mins = new float[8], scales = new float[8], sw = new float[8];
        byte[] laux = new byte[32], Ls = new byte[8], Lm = new byte[8];
        float sumX2 = 0;
        for (int l = 0; l < 256; ++l) sumX2 += x[xb + l] * x[xb + l];
        float sigma2 = 2 * sumX2 / 256;
        float avX = sqrtf(sigma2);
        for (int j = 0; j < 8; ++j) {
            if (qw != null) {
                for (int l = 0; l < 32; ++l) {
                    float v = x[xb + 32 * j + l];
                    weights[l] = qw[qo + 32 * j + l] * sqrtf(sigma2 + v * v);
                }
            } else {
                for (int l = 0; l < 32; ++l) weights[l] = avX + Math.abs(x[xb + 32 * j + l]);
            }
            float sumw = 0;
            for (int l = 0; l < 32; ++l) sumw += weights[l];
            sw[j] = sumw;
            scales[j] = makeQkxQuants(true, 32, nmax, x, xb + 32 * j, weights, 0, L, 32 * j, mins, j, laux, -0.9f, 0.05f, 36, false);
        }
        float dBlock = makeQpQuants(8, 63, scales, Ls, sw);
        float mBlock = makeQpQuants(8, 63, mins, Lm, sw);
        int[] ls = new int[8], lm = new int[8];
        for (int j = 0; j < 8; ++j) {
            ls[j] = Ls[j] & 0xff;
            lm[j] = Lm[j] & 0xff;
            if (clamp63) {
                ls[j] = Math.min(63, ls[j]);
                lm[j] = Math.min(63, lm[j]);
            }
        }
        packScalesK4(sc12, ls, lm);
        dOut[0] = fp16(dBlock);
        dOut[1] = fp16(mBlock);
    }

    private static void write(byte[] sc12, short[] dm, byte[] L, MemorySegment dst, long off) {
        byte[] blk = new byte[144];
        Q4_1Codec.putShort(blk, 0, dm[0]);
        Q4_1Codec.putShort(blk, 2, dm[1]);
        System.arraycopy(sc12, 0, blk, 4, 12);
        for (int j = 0, q = 16; j < 256; j += 64, q += 32) {
            for (int l = 0; l < 32; ++l) blk[q + l] = (byte) (L[j + l] | (L[j + l + 32] << 4));
        }
        MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off, 144);
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        byte[] L = new byte[256], sc12 = new byte[12];
        short[] dm = new short[2];
        for (int i = 0; i < n / 256; i++) {
            int xb = xo + 256 * i;
            refScales(x, xb, 15, -1.f, 0.1f, 20, L, sc12, dm);
            requantizeK(x, xb, sc12, f16(dm[0]), f16(dm[1]), L, 15);
            write(sc12, dm, L, dst, off + 144L * i);
        }
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        byte[] L = new byte[256], sc12 = new byte[12];
        short[] dm = new short[2];
        for (int i = 0; i < n / 256; i++) {
            int xb = xo + 256 * i;
            implScales(x, xb, qw, 256 * i, 15, L, sc12, dm, false);
            requantizeK(x, xb, sc12, f16(dm[0]), f16(dm[1]), L, 15);
            write(sc12, dm, L, dst, off + 144L * i);
        }
    }

    /** The 8 six-bit scales of a Q4_K/Q5_K block as the bytes of a long (ggml's utmp unpacking). */
    static long packedScales(MemorySegment w, long scOff) {
        int u0 = w.get(I32, scOff), u2 = w.get(I32, scOff + 8);
        int lo = u0 & 0x3f3f3f3f;
        int hi = (u2 & 0x0f0f0f0f) | (((u0 >>> 6) & 0x03030303) << 4);
        return (lo & 0xFFFFFFFFL) | ((long) hi << 32);
    }

    /** The 8 six-bit mins of a Q4_K/Q5_K block as the bytes of a long. */
    static long packedMins(MemorySegment w, long scOff) {
        int u1 = w.get(I32, scOff + 4), u2 = w.get(I32, scOff + 8);
        int lo = u1 & 0x3f3f3f3f;
        int hi = ((u2 >>> 4) & 0x0f0f0f0f) | (((u1 >>> 6) & 0x03030303) << 4);
        return (lo & 0xFFFFFFFFL) | ((long) hi << 32);
    }

    /** Sum over the 8 sub-blocks of min_j * (bsums[2j] + bsums[2j+1]) of the Q8_K block at xo. */
    static int minTerm(long mins, MemorySegment xq, long xo) {
        int summs = 0;
        for (int j = 0; j < 8; ++j) {
            int two = xq.get(I32, xo + 260 + 4 * j); // bsums[2j] and bsums[2j+1]
            summs += (int) ((mins >>> (8 * j)) & 0xFF) * ((short) two + (two >> 16));
        }
        return summs;
    }

    /**
     * The min term of a Q4_K/Q5_K row: sum over super-blocks of d_x * dmin * sum_j min_j * bsum_j. Kept out
     * of the vector loop's method: C2 compiles the vector loop badly when this scalar loop shares it.
     */
    static float minsOf(MemorySegment w, long wOff, int blockBytes, MemorySegment xq, long xqOff, int nb) {
        float sumMins = 0;
        for (int i = 0; i < nb; i++) {
            long wo = wOff + (long) blockBytes * i, xo = xqOff + 292L * i;
            sumMins += xq.get(F32, xo) * halfAt(w, wo + 2) * minTerm(packedMins(w, wo + 4), xq, xo);
        }
        return sumMins;
    }

    /** Float activations: per 32-weight sub-block d*sc * sum q x - dmin*m * sum x. */
    @Override
    public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
        Kernels.checkFloatDot(type, x, xOff, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int s = 0, ns = n / 32; s < ns; s++) {
            int i = s >> 3, js = s & 7;
            long wo = offset + 144L * i;
            int xo = xOff + 32 * s;
            long qo = wo + 16 + 32 * (js >> 1);
            int shift = 4 * (js & 1);
            FloatVector t = Kernels.bitsx(Kernels.load16(w, qo), shift, 0xF, x, xo, FloatVector.zero(Kernels.F));
            t = Kernels.bitsx(Kernels.load16(w, qo + 16), shift, 0xF, x, xo + 16, t);
            FloatVector xs = Kernels.xsum16(x, xo + 16, Kernels.xsum16(x, xo, FloatVector.zero(Kernels.F)));
            float d = halfAt(w, wo) * (int) ((packedScales(w, wo + 4) >>> (8 * js)) & 0xFF);
            float m = halfAt(w, wo + 2) * (int) ((packedMins(w, wo + 4) >>> (8 * js)) & 0xFF);
            acc = t.fma(FloatVector.broadcast(Kernels.F, d), acc);
            acc = xs.fma(FloatVector.broadcast(Kernels.F, -m), acc);
        }
        return Kernels.sum(acc);
    }

    @Override
    public float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n) {
        checkBlocks(type, n);
        int nb = n / 256;
        return dotScaled(w, wOff, xq, xqOff, nb) - minsOf(w, wOff, 144, xq, xqOff, nb);
    }

    /**
     * The scale part, one flat loop over 32-weight sub-blocks. C2 compiles Vector API code well only in
     * small methods (few vector ops per loop body, no scalar loops beside it), hence the split.
     */
    private static float dotScaled(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int nb) {
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int s = 0, ns = 8 * nb; s < ns; s++) {
            int i = s >> 3, js = s & 7;
            long wo = wOff + 144L * i, xo = xqOff + 292L * i;
            float d = xq.get(F32, xo) * halfAt(w, wo) * (int) ((packedScales(w, wo + 4) >>> (8 * js)) & 0xFF);
            long qo = wo + 16 + 32 * (js >> 1), x8 = xo + 4 + 32 * js;
            int shift = 4 * (js & 1);
            FloatVector sum = Kernels.mulBitsf(Kernels.load16(w, qo), shift, 0xF, Kernels.load16(xq, x8), Kernels.zero());
            sum = Kernels.mulBitsf(Kernels.load16(w, qo + 16), shift, 0xF, Kernels.load16(xq, x8 + 16), sum);
            acc = sum.fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc);
    }

    /** Decode on the expanded row: the scale part per 64 weights (one load of quants serves two sub-blocks), then the mins. */
    @Override
    public float dotFloatRow(MemorySegment w, long wOff, float[] xf, int xfOff, float[] xs, int xsOff, int n) {
        checkBlocks(type, n);
        int nb = n / 256;
        if (xfOff < 0 || xsOff < 0 || xfOff + (long) n > xf.length || xsOff + (long) n / 32 > xs.length) {
            throw new IndexOutOfBoundsException("expanded activations " + xfOff + "+" + n + " / " + xsOff + " outside arrays");
        }
        float scaled = Kernels.PARTS == 1 ? floatScaled(w, wOff, xf, xfOff, nb) : floatScaledScalar(w, wOff, xf, xfOff, nb);
        return scaled - floatMins(w, wOff, 144, xs, xsOff, nb);
    }

    @Override
    public int rowScaleCount(int n) {
        return n / 32;
    }

    @Override
    public void rowScales(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        checkBlocks(type, n);
        for (int i = 0, nb = n / 256; i < nb; i++) {
            long wo = wOff + 144L * i;
            long sc = packedScales(w, wo + 4);
            float dw = halfAt(w, wo);
            for (int j = 0; j < 8; j++) dst[dstOff + 8 * i + j] = dw * (int) ((sc >>> (8 * j)) & 0xFF);
        }
    }

    /** Decode with the sub-block scales from {@link #rowScales}; the mins meet the activations' integer block sums. */
    @Override
    public float dotFloatRow(MemorySegment w, long wOff, float[] sc, int scOff, float[] xf, int[] bsum, float[] xd, int n) {
        checkBlocks(type, n);
        int nb = n / 256;
        checkRowOperands(n, sc, scOff, xf, bsum, xd);
        float scaled = Kernels.PARTS == 1 ? rowScaled(w, wOff, sc, scOff, xf, nb) : floatScaledScalar(w, wOff, xf, 0, nb);
        return scaled - rowMins(w, wOff, bsum, xd, nb);
    }

    /** Sum over super-blocks of d_x * dmin * sum_j min_j * bsum_j, on the expanded integer sums (kept apart from the vector loop). */
    private static float rowMins(MemorySegment w, long wOff, int[] bsum, float[] xd, int nb) {
        float t = 0;
        for (int i = 0; i < nb; i++) {
            long wo = wOff + 144L * i;
            long mn = packedMins(w, wo + 4);
            int s = 0;
            for (int j = 0; j < 8; j++) s += (int) ((mn >>> (8 * j)) & 0xFF) * bsum[8 * i + j];
            t += xd[i] * halfAt(w, wo + 2) * s;
        }
        return t;
    }

    private static float rowScaled(MemorySegment w, long wOff, float[] sc, int scOff, float[] xf, int nb) {
        FloatVector acc0 = Kernels.zero(), acc1 = acc0;
        for (int s = 0, ns = 4 * nb; s < ns; s++) {
            long qo = wOff + 144L * (s >> 2) + 16 + 32 * (s & 3);
            int xo = 64 * s;
            IntVector r0 = Kernels.widen(Kernels.load16(w, qo), 0), r1 = Kernels.widen(Kernels.load16(w, qo + 16), 0);
            FloatVector sa = Kernels.f(r0.and(0xF)).mul(FloatVector.fromArray(Kernels.F, xf, xo));
            sa = Kernels.f(r1.and(0xF)).fma(FloatVector.fromArray(Kernels.F, xf, xo + 16), sa);
            FloatVector sb = Kernels.f(r0.lanewise(VectorOperators.LSHR, 4).and(0xF)).mul(FloatVector.fromArray(Kernels.F, xf, xo + 32));
            sb = Kernels.f(r1.lanewise(VectorOperators.LSHR, 4).and(0xF)).fma(FloatVector.fromArray(Kernels.F, xf, xo + 48), sb);
            acc0 = sa.fma(FloatVector.broadcast(Kernels.F, sc[scOff + 2 * s]), acc0);
            acc1 = sb.fma(FloatVector.broadcast(Kernels.F, sc[scOff + 2 * s + 1]), acc1);
        }
        return Kernels.sum(acc0.add(acc1));
    }

    private static float floatScaled(MemorySegment w, long wOff, float[] xf, int xfOff, int nb) {
        FloatVector acc0 = Kernels.zero(), acc1 = acc0;
        for (int s = 0, ns = 4 * nb; s < ns; s++) {
            int i = s >> 2, jp = s & 3;
            long wo = wOff + 144L * i;
            long sc = packedScales(w, wo + 4) >>> (16 * jp);
            float dw = halfAt(w, wo);
            float dA = dw * (int) (sc & 0xFF), dB = dw * (int) ((sc >>> 8) & 0xFF);
            long qo = wo + 16 + 32 * jp;
            int xo = xfOff + 64 * s;
            IntVector r0 = Kernels.widen(Kernels.load16(w, qo), 0), r1 = Kernels.widen(Kernels.load16(w, qo + 16), 0);
            FloatVector sa = Kernels.f(r0.and(0xF)).mul(FloatVector.fromArray(Kernels.F, xf, xo));
            sa = Kernels.f(r1.and(0xF)).fma(FloatVector.fromArray(Kernels.F, xf, xo + 16), sa);
            FloatVector sb = Kernels.f(r0.lanewise(VectorOperators.LSHR, 4).and(0xF)).mul(FloatVector.fromArray(Kernels.F, xf, xo + 32));
            sb = Kernels.f(r1.lanewise(VectorOperators.LSHR, 4).and(0xF)).fma(FloatVector.fromArray(Kernels.F, xf, xo + 48), sb);
            acc0 = sa.fma(FloatVector.broadcast(Kernels.F, dA), acc0);
            acc1 = sb.fma(FloatVector.broadcast(Kernels.F, dB), acc1);
        }
        return Kernels.sum(acc0.add(acc1));
    }

    private static float floatScaledScalar(MemorySegment w, long wOff, float[] xf, int xfOff, int nb) {
        float t = 0;
        for (int i = 0; i < nb; i++) {
            long wo = wOff + 144L * i;
            long sc = packedScales(w, wo + 4);
            float dw = halfAt(w, wo);
            for (int js = 0; js < 8; js++) {
                long qo = wo + 16 + 32 * (js >> 1);
                int shift = 4 * (js & 1), xo = xfOff + 256 * i + 32 * js;
                float s = 0;
                for (int l = 0; l < 32; l++) s += ((u8(w, qo + l) >> shift) & 0xF) * xf[xo + l];
                t += dw * (int) ((sc >>> (8 * js)) & 0xFF) * s;
            }
        }
        return t;
    }

    /** Sum over super-blocks of dmin * sum_j min_j * (sum of the expanded activations of sub-block j). */
    static float floatMins(MemorySegment w, long wOff, int blockBytes, float[] xs, int xsOff, int nb) {
        float t = 0;
        for (int i = 0; i < nb; i++) {
            long wo = wOff + (long) blockBytes * i;
            long mn = packedMins(w, wo + 4);
            float s = 0;
            for (int j = 0; j < 8; j++) s += (int) ((mn >>> (8 * j)) & 0xFF) * xs[xsOff + 8 * i + j];
            t += halfAt(w, wo + 2) * s;
        }
        return t;
    }

    /** Prefill columns: the dequantized weights d*sc*q - dmin*m, 16 at a time (same floats as dequantize). */
    @Override
    public void decodePrefillRow(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        Kernels.checkDecode(type, n, dst, dstOff, 0);
        for (int i = 0, nb = n / 256; i < nb; i++) {
            long wo = wOff + 144L * i;
            float d = halfAt(w, wo), dmin = halfAt(w, wo + 2);
            long sc = packedScales(w, wo + 4), mn = packedMins(w, wo + 4);
            for (int js = 0; js < 8; js++) {
                float d1 = d * (int) ((sc >>> (8 * js)) & 0xFF), m1 = dmin * (int) ((mn >>> (8 * js)) & 0xFF);
                long qo = wo + 16 + 32 * (js >> 1);
                int shift = 4 * (js & 1), o = dstOff + 256 * i + 32 * js;
                ByteVector q0 = Kernels.load16(w, qo), q1 = Kernels.load16(w, qo + 16);
                Kernels.decode16(q0, shift, 0xF, q0, 0, 0, 0, 0, d1, m1, dst, o);
                Kernels.decode16(q1, shift, 0xF, q1, 0, 0, 0, 0, d1, m1, dst, o + 16);
            }
        }
    }
}
