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
 * Q3_K: super-blocks of 256 = 16 sub-blocks of 16, 3-bit signed quants (2 low bits + a high-bit mask)
 * with 6-bit signed scales; layout hmask[32], qs[64], scales[12], fp16 d (110 bytes). Mirrors
 * ggml-quants.c quantize_row_q3_K_ref (make_q3_quants), quantize_row_q3_K_impl (importance:
 * make_qx_quants), dequantize_row_q3_K and ggml_vec_dot_q3_K_q8_K.
 */
public final class Q3_KCodec extends QuantCodec implements ActivationQuantizedCodec {
    public Q3_KCodec() {
        super(GgmlType.Q3_K, 108);
    }

    @Override
    public GgmlType activationType() {
        return GgmlType.Q8_K;
    }

    /** The 16 signed scales (already minus 32) of the block at o. */
    static void scales(MemorySegment s, long o, int[] out) {
        long so = o + 96;
        for (int j = 0; j < 16; j++) {
            int lo = j < 8 ? u8(s, so + j) & 0xF : u8(s, so + j - 8) >> 4;
            int hi = (u8(s, so + 8 + j % 4) >> (2 * (j / 4))) & 3;
            out[j] = (lo | (hi << 4)) - 32;
        }
    }

    /** Signed scale j (minus 32) of the block at o. */
    static int scale(MemorySegment s, long o, int j) {
        long so = o + 96;
        int lo = j < 8 ? u8(s, so + j) & 0xF : u8(s, so + j - 8) >> 4;
        int hi = (u8(s, so + 8 + (j & 3)) >> (2 * (j >> 2))) & 3;
        return (lo | (hi << 4)) - 32;
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float dAll = halfAt(s, o + 108);
        int[] sc = new int[16];
        scales(s, o, sc);
        int is = 0;
        int m = 1;
        for (int n = 0; n < 256; n += 128) {
            long q = o + 32 + n / 4;
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                float dl = dAll * sc[is++];
                for (int l = 0; l < 16; ++l) y[yo++] = dl * (((u8(s, q + l) >> shift) & 3) - ((u8(s, o + l) & m) != 0 ? 0 : 4));
                dl = dAll * sc[is++];
                for (int l = 0; l < 16; ++l) y[yo++] = dl * (((u8(s, q + l + 16) >> shift) & 3) - ((u8(s, o + l + 16) & m) != 0 ? 0 : 4));
                shift += 2;
                m <<= 1;
            }
        }
    }

    private static void packScale(byte[] blk, int j, int l) {
        if (j < 8) blk[96 + j] = (byte) (l & 0xF);
        else blk[96 + j - 8] |= (byte) ((l & 0xF) << 4);
        l >>= 4;
        blk[96 + 8 + j % 4] |= (byte) (l << (2 * (j / 4)));
    }

    /** Re-derives L from the stored scales, then writes hmask and qs. */
    private static void finish(float[] x, int xb, byte[] blk, byte[] L) {
        float dAll = f16((short) ((blk[108] & 0xff) | (blk[109] << 8)));
        for (int j = 0; j < 16; ++j) {
            int lo = j < 8 ? blk[96 + j] & 0xF : (blk[96 + j - 8] & 0xff) >> 4;
            int sc = (byte) ((lo | ((((blk[96 + 8 + j % 4] & 0xff) >> (2 * (j / 4))) & 3) << 4)) - 32);
            float d = dAll * sc;
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearestInt(x[xb + 16 * j + ii] / d);
                l = Math.max(-4, Math.min(3, l));
                L[16 * j + ii] = (byte) (l + 4);
            }
        }
        java.util.Arrays.fill(blk, 0, 32, (byte) 0);
        int m = 0;
        int hm = 1;
        for (int j = 0; j < 256; ++j) {
            if (L[j] > 3) {
                blk[m] |= (byte) hm;
                L[j] -= 4;
            }
            if (++m == 32) {
                m = 0;
                hm <<= 1;
            }
        }
        for (int j = 0; j < 256; j += 128) {
            for (int l = 0; l < 32; ++l) {
                blk[32 + j / 4 + l] = (byte) (L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
            }
        }
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        byte[] L = new byte[256], blk = new byte[110];
        float[] scales = new float[16];
        for (int i = 0; i < n / 256; i++) {
            int xb = xo + 256 * i;
            float maxScale = 0, amax = 0;
            for (int j = 0; j < 16; ++j) {
                scales[j] = makeQ3Quants(16, 4, x, xb + 16 * j, L, 16 * j, true);
                float scale = Math.abs(scales[j]);
                if (scale > amax) {
                    amax = scale;
                    maxScale = scales[j];
                }
            }
            java.util.Arrays.fill(blk, (byte) 0);
            if (maxScale != 0) {
                float iscale = -32.f / maxScale;
                for (int j = 0; j < 16; ++j) {
                    int l = (byte) nearestInt(iscale * scales[j]);
                    l = Math.max(-32, Math.min(31, l)) + 32;
                    packScale(blk, j, l);
                }
                Q4_1Codec.putShort(blk, 108, fp16(1 / iscale));
            } else {
                Q4_1Codec.putShort(blk, 108, fp16(0.f));
            }
            finish(x, xb, blk, L);
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 110L * i, 110);
        }
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        byte[] L = new byte[256], blk = new byte[110], Ls = new byte[16];
        float[] scales = new float[16], weight = new float[16], sw = new float[16];
        for (int i = 0; i < n / 256; i++) {
            int xb = xo + 256 * i;
            float sumx2 = 0;
            for (int j = 0; j < 256; ++j) sumx2 += x[xb + j] * x[xb + j];
            float sigma2 = 2 * sumx2 / 256;
            for (int j = 0; j < 16; ++j) {
                for (int l = 0; l < 16; ++l) {
                    float v = x[xb + 16 * j + l];
                    weight[l] = qw[256 * i + 16 * j + l] * sqrtf(sigma2 + v * v);
                }
                float sumw = 0;
                for (int l = 0; l < 16; ++l) sumw += weight[l];
                sw[j] = sumw;
                scales[j] = makeQxQuants(16, 4, x, xb + 16 * j, L, 16 * j, 1, weight, 0);
            }
            java.util.Arrays.fill(blk, (byte) 0);
            float dBlock = makeQxQuants(16, 32, scales, 0, Ls, 0, 1, sw, 0);
            for (int j = 0; j < 16; ++j) packScale(blk, j, Ls[j]);
            Q4_1Codec.putShort(blk, 108, fp16(dBlock));
            finish(x, xb, blk, L);
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 110L * i, 110);
        }
    }

    /** Float activations: per 16-weight group d*sc * sum ((q & 3) + 4 h - 4) x. */
    @Override
    public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
        Kernels.checkFloatDot(type, x, xOff, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int g = 0, ng = n / 16; g < ng; g++) {
            int i = g >> 4, k = (g >> 3) & 1, j = (g >> 1) & 3, half = g & 1;
            long wo = offset + 110L * i;
            int xo = xOff + 16 * g;
            FloatVector t = Kernels.bitsx(Kernels.load16(w, wo + 32 + 32 * k + 16 * half), 2 * j, 3, x, xo, FloatVector.zero(Kernels.F));
            FloatVector h = Kernels.bitsx(Kernels.load16(w, wo + 16 * half), 4 * k + j, 1, x, xo, FloatVector.zero(Kernels.F));
            FloatVector xs = Kernels.xsum16(x, xo, FloatVector.zero(Kernels.F));
            float d = halfAt(w, wo + 108) * scale(w, wo, 8 * k + 2 * j + half);
            acc = h.sub(xs).fma(FloatVector.broadcast(Kernels.F, 4f), t).fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc);
    }

    @Override
    public float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n) {
        checkBlocks(type, n);
        return dotGroups(w, wOff, xq, xqOff, n / 256);
    }

    /**
     * One flat loop over 16-weight groups (small loop body: see Q4_KCodec.dotScaled). The quant is
     * (q & 3) - 4 + 4 * hbit, so the dot is sum (q + 4 hbit) x - 4 sum x.
     */
    private static float dotGroups(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int nb) {
        FloatVector acc = FloatVector.zero(Kernels.F);
        float corr = 0;
        for (int g = 0, ng = 16 * nb; g < ng; g++) {
            int i = g >> 4, k = (g >> 3) & 1, j = (g >> 1) & 3, half = g & 1;
            long wo = wOff + 110L * i, xo = xqOff + 292L * i;
            float d = xq.get(F32, xo) * halfAt(w, wo + 108) * scale(w, wo, 8 * k + 2 * j + half);
            corr += d * xq.get(I16, xo + 260 + 2 * (8 * k + 2 * j + half));
            ByteVector x = Kernels.load16(xq, xo + 4 + 128 * k + 32 * j + 16 * half);
            FloatVector lo = Kernels.mulBitsf(Kernels.load16(w, wo + 32 + 32 * k + 16 * half), 2 * j, 3, x, Kernels.zero());
            FloatVector hi = Kernels.mulBitsf(Kernels.load16(w, wo + 16 * half), 4 * k + j, 1, x, Kernels.zero());
            acc = hi.fma(FloatVector.broadcast(Kernels.F, 4f), lo).fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc) - 4 * corr;
    }

    /** Prefill columns: the dequantized weights d*sc*q, 16 at a time (same floats as dequantize). */
    @Override
    public void decodePrefillRow(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        Kernels.checkDecode(type, n, dst, dstOff, 0);
        for (int g = 0, ng = n / 16; g < ng; g++) {
            // value group g of a block: 128-half k, shift j, 16-half h; scale 8k + 2j + h; hmask bit 4k + j
            int i = g >> 4, k = (g >> 3) & 1, j = (g >> 1) & 3, h = g & 1;
            long wo = wOff + 110L * i;
            float dl = halfAt(w, wo + 108) * scale(w, wo, 8 * k + 2 * j + h);
            ByteVector q = Kernels.load16(w, wo + 32 + 32 * k + 16 * h), hm = Kernels.load16(w, wo + 16 * h);
            Kernels.decode16(q, 2 * j, 3, hm, 4 * k + j, 1, 2, 4, dl, 0f, dst, dstOff + 256 * i + 128 * k + 32 * j + 16 * h);
        }
    }
}
