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
 * Q6_K: super-blocks of 256 = 16 sub-blocks of 16, 6-bit signed quants with int8 scales; layout ql[128],
 * qh[64], scales[16], fp16 d (210 bytes). Mirrors ggml-quants.c quantize_row_q6_K_ref
 * (make_qx_quants), quantize_row_q6_K_impl (importance: make_qx_quants weighted by the raw importance),
 * dequantize_row_q6_K and ggml_vec_dot_q6_K_q8_K.
 */
public final class Q6_KCodec extends QuantCodec implements ActivationQuantizedCodec {
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

    @Override
    public float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n) {
        checkBlocks(type, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int i = 0, nb = n / 256; i < nb; i++) {
            long wo = wOff + 210L * i, xo = xqOff + 292L * i;
            IntVector isum = IntVector.zero(Kernels.I);
            for (int k = 0; k < 2; ++k) {
                long ql = wo + 64 * k, qh = wo + 128 + 32 * k, sc = wo + 192 + 8 * k, x8 = xo + 4 + 128 * k;
                for (int g = 0; g < 2; ++g) {
                    ByteVector a = Kernels.load16(w, ql + 16 * g), b = Kernels.load16(w, ql + 32 + 16 * g);
                    ByteVector h = Kernels.load16(w, qh + 16 * g);
                    ByteVector q1 = a.and((byte) 0xF).or(h.and((byte) 3).lanewise(VectorOperators.LSHL, 4)).sub((byte) 32);
                    ByteVector q2 = b.and((byte) 0xF).or(h.lanewise(VectorOperators.LSHR, 2).and((byte) 3).lanewise(VectorOperators.LSHL, 4)).sub((byte) 32);
                    ByteVector q3 = a.lanewise(VectorOperators.LSHR, 4).or(h.lanewise(VectorOperators.LSHR, 4).and((byte) 3).lanewise(VectorOperators.LSHL, 4)).sub((byte) 32);
                    ByteVector q4 = b.lanewise(VectorOperators.LSHR, 4).or(h.lanewise(VectorOperators.LSHR, 6).lanewise(VectorOperators.LSHL, 4)).sub((byte) 32);
                    long xg = x8 + 16 * g;
                    isum = isum.add(Kernels.mul16(q1, Kernels.load16(xq, xg)).mul(s8(w, sc + g)))
                            .add(Kernels.mul16(q2, Kernels.load16(xq, xg + 32)).mul(s8(w, sc + g + 2)))
                            .add(Kernels.mul16(q3, Kernels.load16(xq, xg + 64)).mul(s8(w, sc + g + 4)))
                            .add(Kernels.mul16(q4, Kernels.load16(xq, xg + 96)).mul(s8(w, sc + g + 6)));
                }
            }
            acc = Kernels.fma(isum, xq.get(F32, xo) * halfAt(w, wo + 208), acc);
        }
        return Kernels.sum(acc);
    }
}
