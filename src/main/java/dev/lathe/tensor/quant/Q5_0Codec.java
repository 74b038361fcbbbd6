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
 * Q5_0: 32 weights as 5-bit (q - 16) * d; fp16 d, 4 bytes of high bits, 16 bytes of nibbles (22 bytes).
 * Mirrors ggml-quants.c quantize_row_q5_0_ref, quantize_row_q5_0_impl (importance: make_qx_quants),
 * dequantize_row_q5_0 and ggml_vec_dot_q5_0_q8_0.
 */
public final class Q5_0Codec extends QuantCodec implements ActivationQuantizedCodec {
    public Q5_0Codec() {
        super(GgmlType.Q5_0, 0);
    }

    @Override
    public GgmlType activationType() {
        return GgmlType.Q8_0;
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float d = halfAt(s, o);
        int qh = s.get(I32, o + 2);
        for (int j = 0; j < 16; j++) {
            int xh0 = ((qh >>> j) << 4) & 0x10;
            int xh1 = (qh >>> (j + 12)) & 0x10;
            int q = u8(s, o + 6 + j);
            y[yo + j] = (((q & 0x0F) | xh0) - 16) * d;
            y[yo + j + 16] = (((q >> 4) | xh1) - 16) * d;
        }
    }

    static void pack5(byte[] blk, int qsOff, int qhOff, int[] L) {
        int qh = 0;
        for (int j = 0; j < 16; j++) {
            int xi0 = L[j] & 0xff, xi1 = L[j + 16] & 0xff;
            blk[qsOff + j] = (byte) ((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10) >>> 4) << j;
            qh |= ((xi1 & 0x10) >>> 4) << (j + 16);
        }
        blk[qhOff] = (byte) qh;
        blk[qhOff + 1] = (byte) (qh >>> 8);
        blk[qhOff + 2] = (byte) (qh >>> 16);
        blk[qhOff + 3] = (byte) (qh >>> 24);
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        byte[] blk = new byte[22];
        int[] L = new int[32];
        for (int i = 0; i < n / 32; i++) {
            int b = xo + 32 * i;
            float amax = 0.0f, max = 0.0f;
            for (int j = 0; j < 32; j++) {
                float v = x[b + j];
                if (amax < Math.abs(v)) {
                    amax = Math.abs(v);
                    max = v;
                }
            }
            float d = max / -16;
            float id = d != 0 ? 1.0f / d : 0.0f;
            Q4_1Codec.putShort(blk, 0, fp16(d));
            for (int j = 0; j < 32; j++) L[j] = Math.min(31, (byte) cvtt(x[b + j] * id + 16.5f)) & 0xff;
            pack5(blk, 6, 2, L);
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 22L * i, 22);
        }
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        float sumX2 = 0;
        for (int j = 0; j < n; j++) sumX2 += x[xo + j] * x[xo + j];
        float sigma2 = sumX2 / n;
        float[] weight = new float[32];
        byte[] L = new byte[32];
        int[] Li = new int[32];
        byte[] blk = new byte[22];
        for (int ib = 0; ib < n / 32; ib++) {
            int b = xo + 32 * ib;
            for (int j = 0; j < 32; j++) weight[j] = qw[32 * ib + j] * sqrtf(sigma2 + x[b + j] * x[b + j]);
            float d = makeQxQuants(32, 16, x, b, L, 0, 1, weight, 0);
            Q4_1Codec.putShort(blk, 0, fp16(d));
            for (int j = 0; j < 32; j++) Li[j] = L[j] & 0xff;
            pack5(blk, 6, 2, Li);
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 22L * ib, 22);
        }
    }

    @Override
    public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
        Kernels.checkFloatDot(type, x, xOff, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = offset + 22L * b;
            int xo = xOff + 32 * b;
            int qh = w.get(I32, wo + 2);
            ByteVector q = Kernels.load16(w, wo + 6);
            FloatVector t = Kernels.qx(q.and((byte) 0x0F).or(Kernels.spread(qh)).sub((byte) 16), x, xo, FloatVector.zero(Kernels.F));
            t = Kernels.qx(q.lanewise(VectorOperators.LSHR, 4).or(Kernels.spread(qh >>> 16)).sub((byte) 16), x, xo + 16, t);
            acc = t.fma(FloatVector.broadcast(Kernels.F, halfAt(w, wo)), acc);
        }
        return Kernels.sum(acc);
    }

    @Override
    public float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n) {
        checkBlocks(type, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = wOff + 22L * b, xo = xqOff + 34L * b;
            float d = halfAt(w, wo) * halfAt(xq, xo);
            int qh = w.get(I32, wo + 2);
            ByteVector q = Kernels.load16(w, wo + 6);
            ByteVector lo = q.and((byte) 0x0F).or(Kernels.spread(qh)).sub((byte) 16);
            ByteVector hi = q.lanewise(VectorOperators.LSHR, 4).or(Kernels.spread(qh >>> 16)).sub((byte) 16);
            FloatVector s = Kernels.mulf(hi, Kernels.load16(xq, xo + 18), Kernels.mulf(lo, Kernels.load16(xq, xo + 2), Kernels.zero()));
            acc = s.fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc);
    }

    /** Prefill columns: the dequantized weights (q - 16) * d, 16 at a time (same floats as dequantize). */
    @Override
    public void decodePrefillRow(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        Kernels.checkDecode(type, n, dst, dstOff, 0);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = wOff + 22L * b;
            float d = halfAt(w, wo);
            int qh = w.get(I32, wo + 2);
            ByteVector q = Kernels.load16(w, wo + 6);
            Kernels.decode16(q, 0, 0xF, Kernels.spread(qh), 0, 0x10, 0, 16, d, 0f, dst, dstOff + 32 * b);
            Kernels.decode16(q, 4, 0xF, Kernels.spread(qh >>> 16), 0, 0x10, 0, 16, d, 0f, dst, dstOff + 32 * b + 16);
        }
    }
}
