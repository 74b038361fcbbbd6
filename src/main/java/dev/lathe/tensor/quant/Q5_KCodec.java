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
 * Q5_K: super-blocks of 256 = 8 sub-blocks of 32, 5-bit quants with 6-bit scales and mins; layout fp16 d,
 * fp16 dmin, scales[12], qh[32], qs[128] (176 bytes). Mirrors ggml-quants.c quantize_row_q5_K_ref
 * (make_qkx2_quants), quantize_row_q5_K_impl (importance: make_qkx3_quants + make_qp_quants),
 * dequantize_row_q5_K and ggml_vec_dot_q5_K_q8_K.
 */
public final class Q5_KCodec extends QuantCodec implements ActivationQuantizedCodec {
    public Q5_KCodec() {
        super(GgmlType.Q5_K, 0, 2);
    }

    @Override
    public GgmlType activationType() {
        return GgmlType.Q8_K;
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float d = halfAt(s, o), min = halfAt(s, o + 2);
        long ql = o + 48, qh = o + 16;
        int is = 0;
        int u1 = 1, u2 = 2;
        for (int j = 0; j < 256; j += 64) {
            float d1 = d * scaleK4(is, s, o + 4), m1 = min * minK4(is, s, o + 4);
            float d2 = d * scaleK4(is + 1, s, o + 4), m2 = min * minK4(is + 1, s, o + 4);
            for (int l = 0; l < 32; ++l) y[yo++] = d1 * ((u8(s, ql + l) & 0xF) + ((u8(s, qh + l) & u1) != 0 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) y[yo++] = d2 * ((u8(s, ql + l) >> 4) + ((u8(s, qh + l) & u2) != 0 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 <<= 2;
            u2 <<= 2;
        }
    }

    private static void write(byte[] sc12, short[] dm, byte[] L, MemorySegment dst, long off) {
        byte[] blk = new byte[176];
        Q4_1Codec.putShort(blk, 0, dm[0]);
        Q4_1Codec.putShort(blk, 2, dm[1]);
        System.arraycopy(sc12, 0, blk, 4, 12);
        int m1 = 1, m2 = 2;
        int ql = 48;
        for (int n = 0; n < 256; n += 64) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n + j];
                if (l1 > 15) {
                    l1 -= 16;
                    blk[16 + j] |= (byte) m1;
                }
                int l2 = L[n + j + 32];
                if (l2 > 15) {
                    l2 -= 16;
                    blk[16 + j] |= (byte) m2;
                }
                blk[ql + j] = (byte) (l1 | (l2 << 4));
            }
            m1 <<= 2;
            m2 <<= 2;
            ql += 32;
        }
        MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off, 176);
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        byte[] L = new byte[256], sc12 = new byte[12];
        short[] dm = new short[2];
        for (int i = 0; i < n / 256; i++) {
            int xb = xo + 256 * i;
            Q4_KCodec.refScales(x, xb, 31, -0.5f, 0.1f, 15, L, sc12, dm);
            Q4_KCodec.requantizeK(x, xb, sc12, f16(dm[0]), f16(dm[1]), L, 31);
            write(sc12, dm, L, dst, off + 176L * i);
        }
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        byte[] L = new byte[256], sc12 = new byte[12];
        short[] dm = new short[2];
        for (int i = 0; i < n / 256; i++) {
            int xb = xo + 256 * i;
            Q4_KCodec.implScales(x, xb, qw, 256 * i, 31, L, sc12, dm, true);
            Q4_KCodec.requantizeK(x, xb, sc12, f16(dm[0]), f16(dm[1]), L, 31);
            write(sc12, dm, L, dst, off + 176L * i);
        }
    }

    /** Float activations: per 16-weight group d*sc * sum (q + 16 h) x - dmin*m * sum x. */
    @Override
    public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
        Kernels.checkFloatDot(type, x, xOff, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int g = 0, ng = n / 16; g < ng; g++) {
            int i = g >> 4, js = (g >> 1) & 7, half = g & 1;
            long wo = offset + 176L * i;
            int xo = xOff + 16 * g;
            FloatVector t = Kernels.bitsx(Kernels.load16(w, wo + 48 + 32 * (js >> 1) + 16 * half), 4 * (js & 1), 0xF, x, xo, FloatVector.zero(Kernels.F));
            FloatVector h = Kernels.bitsx(Kernels.load16(w, wo + 16 + 16 * half), js, 1, x, xo, FloatVector.zero(Kernels.F));
            FloatVector xs = Kernels.xsum16(x, xo, FloatVector.zero(Kernels.F));
            float d = halfAt(w, wo) * (int) ((Q4_KCodec.packedScales(w, wo + 4) >>> (8 * js)) & 0xFF);
            float m = halfAt(w, wo + 2) * (int) ((Q4_KCodec.packedMins(w, wo + 4) >>> (8 * js)) & 0xFF);
            acc = h.fma(FloatVector.broadcast(Kernels.F, 16f), t).fma(FloatVector.broadcast(Kernels.F, d), acc);
            acc = xs.fma(FloatVector.broadcast(Kernels.F, -m), acc);
        }
        return Kernels.sum(acc);
    }

    @Override
    public float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n) {
        checkBlocks(type, n);
        int nb = n / 256;
        return dotScaled(w, wOff, xq, xqOff, nb) - Q4_KCodec.minsOf(w, wOff, 176, xq, xqOff, nb);
    }

    /** The scale part, one flat loop over 16-weight groups (small loop body: see Q4_KCodec.dotScaled). */
    private static float dotScaled(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int nb) {
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int g = 0, ng = 16 * nb; g < ng; g++) {
            int i = g >> 4, js = (g >> 1) & 7, half = g & 1;
            long wo = wOff + 176L * i, xo = xqOff + 292L * i;
            float d = xq.get(F32, xo) * halfAt(w, wo) * (int) ((Q4_KCodec.packedScales(w, wo + 4) >>> (8 * js)) & 0xFF);
            ByteVector x = Kernels.load16(xq, xo + 4 + 32 * js + 16 * half);
            FloatVector lo = Kernels.mulBitsf(Kernels.load16(w, wo + 48 + 32 * (js >> 1) + 16 * half), 4 * (js & 1), 0xF, x, Kernels.zero());
            FloatVector hi = Kernels.mulBitsf(Kernels.load16(w, wo + 16 + 16 * half), js, 1, x, Kernels.zero());
            acc = hi.fma(FloatVector.broadcast(Kernels.F, 16f), lo).fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc);
    }

    /** Prefill columns: the dequantized weights d*sc*q - dmin*m, 16 at a time (same floats as dequantize). */
    @Override
    public void decodePrefillRow(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        Kernels.checkDecode(type, n, dst, dstOff, 0);
        for (int i = 0, nb = n / 256; i < nb; i++) {
            long wo = wOff + 176L * i;
            float d = halfAt(w, wo), dmin = halfAt(w, wo + 2);
            long sc = Q4_KCodec.packedScales(w, wo + 4), mn = Q4_KCodec.packedMins(w, wo + 4);
            for (int js = 0; js < 8; js++) {
                float d1 = d * (int) ((sc >>> (8 * js)) & 0xFF), m1 = dmin * (int) ((mn >>> (8 * js)) & 0xFF);
                long qo = wo + 48 + 32 * (js >> 1);
                int shift = 4 * (js & 1), o = dstOff + 256 * i + 32 * js;
                for (int h = 0; h < 2; h++) {
                    ByteVector ql = Kernels.load16(w, qo + 16 * h), qh = Kernels.load16(w, wo + 16 + 16 * h);
                    Kernels.decode16(ql, shift, 0xF, qh, js, 1, 4, 0, d1, m1, dst, o + 16 * h);
                }
            }
        }
    }
}
