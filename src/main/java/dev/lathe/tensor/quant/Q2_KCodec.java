package dev.lathe.tensor.quant;

import dev.lathe.tensor.ActivationQuantizedCodec;
import dev.lathe.tensor.GgmlType;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.lathe.tensor.quant.QuantMath.*;

/**
 * Q2_K: super-blocks of 256 = 16 sub-blocks of 16 with 4-bit scales and mins; layout scales[16],
 * qs[64], fp16 d, fp16 dmin (84 bytes). Mirrors ggml-quants.c quantize_row_q2_K_ref (no importance:
 * make_qkx2_quants), quantize_row_q2_K_impl (importance: make_qkx3_quants + make_qp_quants),
 * dequantize_row_q2_K and ggml_vec_dot_q2_K_q8_K.
 */
public final class Q2_KCodec extends QuantCodec implements ActivationQuantizedCodec {
    public Q2_KCodec() {
        super(GgmlType.Q2_K, 80, 82);
    }

    @Override
    public GgmlType activationType() {
        return GgmlType.Q8_K;
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float d = halfAt(s, o + 80), min = halfAt(s, o + 82);
        int is = 0;
        for (int n = 0; n < 256; n += 128) {
            long q = o + 16 + n / 4;
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                int sc = u8(s, o + is++);
                float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                for (int l = 0; l < 16; ++l) y[yo++] = dl * ((u8(s, q + l) >> shift) & 3) - ml;
                sc = u8(s, o + is++);
                dl = d * (sc & 0xF);
                ml = min * (sc >> 4);
                for (int l = 0; l < 16; ++l) y[yo++] = dl * ((u8(s, q + l + 16) >> shift) & 3) - ml;
                shift += 2;
            }
        }
    }

    private static void packQs(byte[] blk, int qsOff, byte[] L) {
        for (int j = 0; j < 256; j += 128) {
            for (int l = 0; l < 32; ++l) {
                blk[qsOff + j / 4 + l] = (byte) (L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
            }
        }
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        byte[] L = new byte[256], laux = new byte[16], blk = new byte[84];
        float[] weights = new float[16], mins = new float[16], scales = new float[16];
        final float q4scale = 15.f;
        for (int i = 0; i < n / 256; i++) {
            int xb = xo + 256 * i;
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 16; ++j) {
                for (int l = 0; l < 16; ++l) weights[l] = Math.abs(x[xb + 16 * j + l]);
                scales[j] = makeQkxQuants(false, 16, 3, x, xb + 16 * j, weights, 0, L, 16 * j, mins, j, laux, -0.5f, 0.1f, 15, true);
                if (scales[j] > maxScale) maxScale = scales[j];
                if (mins[j] > maxMin) maxMin = mins[j];
            }
            java.util.Arrays.fill(blk, (byte) 0);
            short dh, dminh;
            if (maxScale > 0) {
                float iscale = q4scale / maxScale;
                for (int j = 0; j < 16; ++j) blk[j] = (byte) nearestInt(iscale * scales[j]);
                dh = fp16(maxScale / q4scale);
            } else {
                dh = fp16(0.f);
            }
            if (maxMin > 0) {
                float iscale = q4scale / maxMin;
                for (int j = 0; j < 16; ++j) blk[j] |= (byte) (nearestInt(iscale * mins[j]) << 4);
                dminh = fp16(maxMin / q4scale);
            } else {
                dminh = fp16(0.f);
            }
            Q4_1Codec.putShort(blk, 80, dh);
            Q4_1Codec.putShort(blk, 82, dminh);
            requantize(x, xb, blk, f16(dh), f16(dminh), L);
            packQs(blk, 16, L);
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 84L * i, 84);
        }
    }

    private static void requantize(float[] x, int xb, byte[] blk, float dAll, float mAll, byte[] L) {
        for (int j = 0; j < 16; ++j) {
            int sc = blk[j] & 0xff;
            float d = dAll * (sc & 0xF);
            if (d == 0) continue;
            float dm = mAll * (sc >> 4);
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearestInt((x[xb + 16 * j + ii] + dm) / d);
                L[16 * j + ii] = (byte) Math.max(0, Math.min(3, l));
            }
        }
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        byte[] L = new byte[256], laux = new byte[16], blk = new byte[84], Ls = new byte[16], Lm = new byte[16];
        float[] weight = new float[16], mins = new float[16], scales = new float[16], sw = new float[16];
        for (int i = 0; i < n / 256; i++) {
            int xb = xo + 256 * i;
            java.util.Arrays.fill(sw, 0);
            float sumx2 = 0;
            for (int j = 0; j < 256; ++j) sumx2 += x[xb + j] * x[xb + j];
            float sigma2 = sumx2 / 256;
            for (int j = 0; j < 16; ++j) {
                for (int l = 0; l < 16; ++l) weight[l] = qw[256 * i + 16 * j + l] * sqrtf(sigma2 + x[xb + 16 * j + l] * x[xb + 16 * j + l]);
                for (int l = 0; l < 16; ++l) sw[j] += weight[l];
                scales[j] = makeQkxQuants(true, 16, 3, x, xb + 16 * j, weight, 0, L, 16 * j, mins, j, laux, -0.9f, 0.05f, 36, false);
            }
            float dm = makeQpQuants(16, 15, scales, Ls, sw);
            float mm = makeQpQuants(16, 15, mins, Lm, sw);
            java.util.Arrays.fill(blk, (byte) 0);
            short dh = fp16(dm), mh = fp16(mm);
            Q4_1Codec.putShort(blk, 80, dh);
            Q4_1Codec.putShort(blk, 82, mh);
            for (int j = 0; j < 16; ++j) blk[j] = (byte) ((Ls[j] & 0xff) | ((Lm[j] & 0xff) << 4));
            requantize(x, xb, blk, f16(dh), f16(mh), L);
            packQs(blk, 16, L);
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 84L * i, 84);
        }
    }

    /** Float activations: per 16-weight group d*sc * sum q x - dmin*m * sum x. */
    @Override
    public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
        Kernels.checkFloatDot(type, x, xOff, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int g = 0, ng = n / 16; g < ng; g++) {
            int i = g >> 4, k = (g >> 3) & 1, j = (g >> 1) & 3, half = g & 1;
            long wo = offset + 84L * i;
            int xo = xOff + 16 * g;
            int sc = u8(w, wo + 8 * k + 2 * j + half);
            FloatVector t = Kernels.bitsx(Kernels.load16(w, wo + 16 + 32 * k + 16 * half), 2 * j, 3, x, xo, FloatVector.zero(Kernels.F));
            FloatVector xs = Kernels.xsum16(x, xo, FloatVector.zero(Kernels.F));
            acc = t.fma(FloatVector.broadcast(Kernels.F, halfAt(w, wo + 80) * (sc & 0xF)), acc);
            acc = xs.fma(FloatVector.broadcast(Kernels.F, -(halfAt(w, wo + 82) * (sc >> 4))), acc);
        }
        return Kernels.sum(acc);
    }

    @Override
    public float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n) {
        checkBlocks(type, n);
        return dotGroups(w, wOff, xq, xqOff, n / 256) - minsOf(w, wOff, xq, xqOff, n / 256);
    }

    private static float minsOf(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int nb) {
        float sumMins = 0;
        for (int i = 0; i < nb; i++) {
            long wo = wOff + 84L * i, xo = xqOff + 292L * i;
            int summs = 0;
            for (int j = 0; j < 16; ++j) summs += xq.get(I16, xo + 260 + 2 * j) * (u8(w, wo + j) >> 4);
            sumMins += xq.get(F32, xo) * halfAt(w, wo + 82) * summs;
        }
        return sumMins;
    }

    /** One flat loop over 16-weight groups (small loop body: see Q4_KCodec.dotScaled). */
    private static float dotGroups(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int nb) {
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int g = 0, ng = 16 * nb; g < ng; g++) {
            int i = g >> 4, k = (g >> 3) & 1, j = (g >> 1) & 3, half = g & 1;
            long wo = wOff + 84L * i, xo = xqOff + 292L * i;
            float d = xq.get(F32, xo) * halfAt(w, wo + 80) * (u8(w, wo + 8 * k + 2 * j + half) & 0xF);
            FloatVector sum = Kernels.mulBitsf(Kernels.load16(w, wo + 16 + 32 * k + 16 * half), 2 * j, 3,
                    Kernels.load16(xq, xo + 4 + 128 * k + 32 * j + 16 * half), Kernels.zero());
            acc = sum.fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc);
    }

    /** Prefill columns: the dequantized weights d*sc*q - dmin*m, 16 at a time (same floats as dequantize). */
    @Override
    public void decodePrefillRow(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        Kernels.checkDecode(type, n, dst, dstOff, 0);
        for (int g = 0, ng = n / 16; g < ng; g++) {
            // value group g of a block: 128-half k, shift j, 16-half h; scale byte 8k + 2j + h
            int i = g >> 4, k = (g >> 3) & 1, j = (g >> 1) & 3, h = g & 1;
            long wo = wOff + 84L * i;
            int sc = u8(w, wo + 8 * k + 2 * j + h);
            float dl = halfAt(w, wo + 80) * (sc & 0xF), ml = halfAt(w, wo + 82) * (sc >> 4);
            ByteVector q = Kernels.load16(w, wo + 16 + 32 * k + 16 * h);
            Kernels.decode16(q, 2 * j, 3, q, 0, 0, 0, 0, dl, ml, dst, dstOff + 256 * i + 128 * k + 32 * j + 16 * h);
        }
    }
}
