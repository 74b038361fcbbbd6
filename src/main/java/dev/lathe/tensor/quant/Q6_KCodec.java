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
 * Q6_K: super-blocks of 256 = 16 sub-blocks of 16, 6-bit signed quants with int8 scales; layout ql[128],
 * qh[64], scales[16], fp16 d (210 bytes). Mirrors ggml-quants.c quantize_row_q6_K_ref
 * (make_qx_quants), quantize_row_q6_K_impl (importance: make_qx_quants weighted by the raw importance),
 * dequantize_row_q6_K and ggml_vec_dot_q6_K_q8_K.
 */
public final class Q6_KCodec extends QuantCodec implements FloatRowDot {
    public Q6_KCodec() {
        super(GgmlType.Q6_K, 208);
    }

    @Override
    public GgmlType activationType() {
        return GgmlType.Q8_K;
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float d = halfAt(s, o + 208);
        long ql = o, qh = o + 128, sc = o + 192;
        for (int n = 0; n < 256; n += 128) {
            for (int l = 0; l < 32; ++l) {
                int is = l / 16;
                int h = u8(s, qh + l);
                int q1 = ((u8(s, ql + l) & 0xF) | ((h & 3) << 4)) - 32;
                int q2 = ((u8(s, ql + l + 32) & 0xF) | (((h >> 2) & 3) << 4)) - 32;
                int q3 = ((u8(s, ql + l) >> 4) | (((h >> 4) & 3) << 4)) - 32;
                int q4 = ((u8(s, ql + l + 32) >> 4) | (((h >> 6) & 3) << 4)) - 32;
                y[yo + l] = d * s8(s, sc + is) * q1;
                y[yo + l + 32] = d * s8(s, sc + is + 2) * q2;
                y[yo + l + 64] = d * s8(s, sc + is + 4) * q3;
                y[yo + l + 96] = d * s8(s, sc + is + 6) * q4;
            }
            yo += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }

    private void quantizeRow(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        byte[] L = new byte[256], blk = new byte[210];
        float[] scales = new float[16];
        for (int i = 0; i < n / 256; i++) {
            int xb = xo + 256 * i;
            float maxScale = 0, maxAbsScale = 0;
            for (int ib = 0; ib < 16; ++ib) {
                float scale = makeQxQuants(16, 32, x, xb + 16 * ib, L, 16 * ib, 1, qw, 256 * i + 16 * ib);
                scales[ib] = scale;
                float abs = Math.abs(scale);
                if (abs > maxAbsScale) {
                    maxAbsScale = abs;
                    maxScale = scale;
                }
            }
            java.util.Arrays.fill(blk, (byte) 0);
            if (maxAbsScale >= GROUP_MAX_EPS) {
                float iscale = -128.f / maxScale;
                short dh = fp16(1 / iscale);
                Q4_1Codec.putShort(blk, 208, dh);
                for (int ib = 0; ib < 16; ++ib) blk[192 + ib] = (byte) Math.min(127, nearestInt(iscale * scales[ib]));
                float dAll = f16(dh);
                for (int j = 0; j < 16; ++j) {
                    float d = dAll * blk[192 + j];
                    if (d == 0) continue;
                    for (int ii = 0; ii < 16; ++ii) {
                        int l = nearestInt(x[xb + 16 * j + ii] / d);
                        l = Math.max(-32, Math.min(31, l));
                        L[16 * j + ii] = (byte) (l + 32);
                    }
                }
                int ql = 0, qh = 128;
                for (int j = 0; j < 256; j += 128) {
                    for (int l = 0; l < 32; ++l) {
                        int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                        blk[ql + l] = (byte) (q1 | (q3 << 4));
                        blk[ql + l + 32] = (byte) (q2 | (q4 << 4));
                        blk[qh + l] = (byte) ((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
                    }
                    ql += 64;
                    qh += 32;
                }
            }
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 210L * i, 210);
        }
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        quantizeRow(x, xo, n, null, dst, off);
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        quantizeRow(x, xo, n, qw, dst, off);
    }

    /** Float activations: per 16-weight group d*sc * sum (u - 32) x, u the unsigned 6-bit quant. */
    @Override
    public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
        Kernels.checkFloatDot(type, x, xOff, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int g = 0, ng = n / 16; g < ng; g++) {
            int i = g >> 4, k = (g >> 3) & 1, quarter = (g >> 1) & 3, half = g & 1;
            long wo = offset + 210L * i;
            int xo = xOff + 256 * i + 128 * k + 32 * quarter + 16 * half;
            FloatVector t = Kernels.bitsx(Kernels.load16(w, wo + 64 * k + 32 * (quarter & 1) + 16 * half), 4 * (quarter >> 1), 0xF, x, xo, FloatVector.zero(Kernels.F));
            FloatVector h = Kernels.bitsx(Kernels.load16(w, wo + 128 + 32 * k + 16 * half), 2 * quarter, 3, x, xo, FloatVector.zero(Kernels.F));
            FloatVector xs = Kernels.xsum16(x, xo, FloatVector.zero(Kernels.F));
            float d = halfAt(w, wo + 208) * s8(w, wo + 192 + 8 * k + half + 2 * quarter);
            acc = h.fma(FloatVector.broadcast(Kernels.F, 16f), t).sub(xs.mul(32f)).fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc);
    }

    @Override
    public float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n) {
        checkBlocks(type, n);
        return dotGroups(w, wOff, xq, xqOff, n / 256) - 32 * bsumTerm(w, wOff, xq, xqOff, n / 256);
    }

    /**
     * Decode on the expanded row without kept scales: the reference form (dequantized blocks times the floats). A
     * layer decodes through {@link #rowScales} and the vector kernel of the other {@code dotFloatRow}.
     */
    @Override
    public float dotFloatRow(MemorySegment w, long wOff, float[] xf, int xfOff, float[] xs, int xsOff, int n) {
        checkBlocks(type, n);
        if (xfOff < 0 || xfOff + (long) n > xf.length) throw new IndexOutOfBoundsException("expanded activations " + xfOff + "+" + n + " outside array");
        float[] y = new float[256];
        float t = 0;
        for (int i = 0; i < n / 256; i++) {
            dequantizeBlock(w, wOff + 210L * i, y, 0);
            for (int l = 0; l < 256; l++) t += y[l] * xf[xfOff + 256 * i + l];
        }
        return t;
    }

    @Override
    public int rowScaleCount(int n) {
        return n / 16;
    }

    @Override
    public void rowScales(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        checkBlocks(type, n);
        for (int i = 0, nb = n / 256; i < nb; i++) {
            long wo = wOff + 210L * i;
            float d = halfAt(w, wo + 208);
            for (int j = 0; j < 16; j++) dst[dstOff + 16 * i + j] = d * s8(w, wo + 192 + j);
        }
    }

    /** Decode with the 16-weight scales from {@link #rowScales} (what the layer keeps per tensor). */
    @Override
    public float dotFloatRow(MemorySegment w, long wOff, float[] sc, int scOff, float[] xf, int[] bsum, float[] xd, int n) {
        checkBlocks(type, n);
        int nb = n / 256;
        checkRowOperands(n, sc, scOff, xf, bsum, xd);
        if (Kernels.PARTS != 1) return dotFloatRow(w, wOff, xf, 0, null, 0, n);
        return rowGroups(w, wOff, sc, scOff, xf, nb);
    }

    /**
     * The vector loop on its own, nested as super-block / half / 16-weight group / quarter: a flat loop over
     * 16-weight groups with the indices derived from one counter (the form Q4_K's kernels use) ran about 3x
     * slower here once C2 compiled it into the decode loop, and so did a version passing vectors to a helper;
     * inlined into the public method, C2 heap-allocated its accumulators.
     */
    private static float rowGroups(MemorySegment w, long wOff, float[] sc, int scOff, float[] xf, int nb) {
        FloatVector acc0 = Kernels.zero(), acc1 = acc0;
        for (int i = 0; i < nb; i++) {
            long wo = wOff + 210L * i;
            int xb = 256 * i, so = scOff + 16 * i;
            for (int k = 0; k < 2; k++) {
                for (int half = 0; half < 2; half++) {
                    IntVector qh = Kernels.widen(Kernels.load16(w, wo + 128 + 32 * k + 16 * half), 0);
                    IntVector qa = Kernels.widen(Kernels.load16(w, wo + 64 * k + 16 * half), 0);
                    IntVector qb = Kernels.widen(Kernels.load16(w, wo + 64 * k + 32 + 16 * half), 0);
                    for (int quarter = 0; quarter < 4; quarter++) {
                        IntVector ql = (quarter & 1) == 0 ? qa : qb;
                        IntVector q = ql.lanewise(VectorOperators.LSHR, 4 * (quarter >> 1)).and(0xF)
                                .or(qh.lanewise(VectorOperators.LSHR, 2 * quarter).and(3).lanewise(VectorOperators.LSHL, 4)).sub(32);
                        float s = sc[so + 8 * k + half + 2 * quarter];
                        FloatVector p = Kernels.f(q).mul(FloatVector.fromArray(Kernels.F, xf, xb + 128 * k + 32 * quarter + 16 * half));
                        if ((quarter & 1) == 0) acc0 = p.fma(FloatVector.broadcast(Kernels.F, s), acc0);
                        else acc1 = p.fma(FloatVector.broadcast(Kernels.F, s), acc1);
                    }
                }
            }
        }
        return Kernels.sum(acc0.add(acc1));
    }

    /** sum over super-blocks of d_w d_x sum_j scale_j * bsum_j: the -32 offset of the quants, applied once. */
    private static float bsumTerm(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int nb) {
        float t = 0;
        for (int i = 0; i < nb; i++) {
            long wo = wOff + 210L * i, xo = xqOff + 292L * i;
            int s = 0;
            for (int j = 0; j < 16; j++) s += s8(w, wo + 192 + j) * xq.get(I16, xo + 260 + 2 * j);
            t += xq.get(F32, xo) * halfAt(w, wo + 208) * s;
        }
        return t;
    }

    /** The unsigned-quant part, one flat loop over 16-weight groups (small loop body: see Q4_KCodec.dotScaled). */
    private static float dotGroups(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int nb) {
        if (Kernels.PARTS != 1) return dotGroupsGeneric(w, wOff, xq, xqOff, nb);
        // AVX-512: the 6-bit quant is rebuilt in int lanes, q = lo | hi << 4 (0..63), and multiplied once; its
        // lanes equal lo * x + 16 * (hi * x) of the generic path (all exact), so the results are identical
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int i = 0; i < nb; i++) {
            long wo = wOff + 210L * i, xo = xqOff + 292L * i;
            float dd = xq.get(F32, xo) * halfAt(w, wo + 208);
            for (int k = 0; k < 2; k++) {
                for (int quarter = 0; quarter < 4; quarter++) {
                    int loShift = 4 * (quarter >> 1), hiShift = 2 * quarter;
                    for (int half = 0; half < 2; half++) {
                        IntVector ql = Kernels.widen(Kernels.load16(w, wo + 64 * k + 32 * (quarter & 1) + 16 * half), 0);
                        IntVector qh = Kernels.widen(Kernels.load16(w, wo + 128 + 32 * k + 16 * half), 0);
                        IntVector q = ql.lanewise(VectorOperators.LSHR, loShift).and(0xF)
                                .or(qh.lanewise(VectorOperators.LSHR, hiShift).and(3).lanewise(VectorOperators.LSHL, 4));
                        FloatVector x = Kernels.f(Kernels.widen(Kernels.load16(xq, xo + 4 + 128 * k + 32 * quarter + 16 * half), 0));
                        float d = dd * s8(w, wo + 192 + 8 * k + half + 2 * quarter);
                        acc = Kernels.f(q).mul(x).fma(FloatVector.broadcast(Kernels.F, d), acc);
                    }
                }
            }
        }
        return Kernels.sum(acc);
    }

    private static float dotGroupsGeneric(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int nb) {
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int g = 0, ng = 16 * nb; g < ng; g++) {
            int i = g >> 4, k = (g >> 3) & 1, quarter = (g >> 1) & 3, half = g & 1;
            long wo = wOff + 210L * i, xo = xqOff + 292L * i;
            float d = xq.get(F32, xo) * halfAt(w, wo + 208) * s8(w, wo + 192 + 8 * k + half + 2 * quarter);
            ByteVector x = Kernels.load16(xq, xo + 4 + 128 * k + 32 * quarter + 16 * half);
            FloatVector lo = Kernels.mulBitsf(Kernels.load16(w, wo + 64 * k + 32 * (quarter & 1) + 16 * half), 4 * (quarter >> 1), 0xF, x, Kernels.zero());
            FloatVector hi = Kernels.mulBitsf(Kernels.load16(w, wo + 128 + 32 * k + 16 * half), 2 * quarter, 3, x, Kernels.zero());
            acc = hi.fma(FloatVector.broadcast(Kernels.F, 16f), lo).fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc);
    }

    /** Prefill columns: the dequantized weights d*sc*(q - 32), 16 at a time (same floats as dequantize). */
    @Override
    public void decodePrefillRow(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        Kernels.checkDecode(type, n, dst, dstOff, 0);
        for (int g = 0, ng = n / 16; g < ng; g++) {
            int i = g >> 4, k = (g >> 3) & 1, quarter = (g >> 1) & 3, half = g & 1;
            long wo = wOff + 210L * i;
            float d = halfAt(w, wo + 208) * s8(w, wo + 192 + 8 * k + half + 2 * quarter);
            ByteVector ql = Kernels.load16(w, wo + 64 * k + 32 * (quarter & 1) + 16 * half);
            ByteVector qh = Kernels.load16(w, wo + 128 + 32 * k + 16 * half);
            Kernels.decode16(ql, 4 * (quarter >> 1), 0xF, qh, 2 * quarter, 3, 4, 32, d, 0f, dst, dstOff + 256 * i + 128 * k + 32 * quarter + 16 * half);
        }
    }
}
