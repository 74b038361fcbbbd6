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
 * Q5_1: 32 weights as q * d + m, q in [0, 31]; fp16 d and m, 4 bytes of high bits, 16 bytes of nibbles
 * (24 bytes). Mirrors ggml-quants.c quantize_row_q5_1_ref, quantize_row_q5_1_impl (importance:
 * make_qkx3_quants), dequantize_row_q5_1 and ggml_vec_dot_q5_1_q8_1.
 */
public final class Q5_1Codec extends QuantCodec implements ActivationQuantizedCodec {
    public Q5_1Codec() {
        super(GgmlType.Q5_1, 0, 2);
    }

    @Override
    public GgmlType activationType() {
        return GgmlType.Q8_1;
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float d = halfAt(s, o), m = halfAt(s, o + 2);
        int qh = s.get(I32, o + 4);
        for (int j = 0; j < 16; j++) {
            int xh0 = ((qh >>> j) << 4) & 0x10;
            int xh1 = (qh >>> (j + 12)) & 0x10;
            int q = u8(s, o + 8 + j);
            y[yo + j] = ((q & 0x0F) | xh0) * d + m;
            y[yo + j + 16] = ((q >> 4) | xh1) * d + m;
        }
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        byte[] blk = new byte[24];
        int[] L = new int[32];
        for (int i = 0; i < n / 32; i++) {
            int b = xo + 32 * i;
            float min = Float.MAX_VALUE, max = -Float.MAX_VALUE;
            for (int j = 0; j < 32; j++) {
                float v = x[b + j];
                if (v < min) min = v;
                if (v > max) max = v;
            }
            float d = (max - min) / 31;
            float id = d != 0 ? 1.0f / d : 0.0f;
            Q4_1Codec.putShort(blk, 0, fp16(d));
            Q4_1Codec.putShort(blk, 2, fp16(min));
            for (int j = 0; j < 32; j++) L[j] = cvtt((x[b + j] - min) * id + 0.5f) & 0xff;
            Q5_0Codec.pack5(blk, 8, 4, L);
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 24L * i, 24);
        }
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        float sumX2 = 0;
        for (int j = 0; j < n; j++) sumX2 += x[xo + j] * x[xo + j];
        float sigma2 = sumX2 / n;
        float[] weight = new float[32];
        byte[] L = new byte[32], laux = new byte[32];
        int[] Li = new int[32];
        float[] min = new float[1];
        byte[] blk = new byte[24];
        for (int ib = 0; ib < n / 32; ib++) {
            int b = xo + 32 * ib;
            for (int j = 0; j < 32; j++) weight[j] = qw[32 * ib + j] * sqrtf(sigma2 + x[b + j] * x[b + j]);
            float d = makeQkxQuants(true, 32, 31, x, b, weight, 0, L, 0, min, 0, laux, -0.9f, 0.05f, 36, false);
            Q4_1Codec.putShort(blk, 0, fp16(d));
            Q4_1Codec.putShort(blk, 2, fp16(-min[0]));
            for (int j = 0; j < 32; j++) Li[j] = L[j] & 0xff;
            Q5_0Codec.pack5(blk, 8, 4, Li);
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 24L * ib, 24);
        }
    }

    @Override
    public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
        Kernels.checkFloatDot(type, x, xOff, n);
        FloatVector acc = FloatVector.zero(Kernels.F), accM = FloatVector.zero(Kernels.F);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = offset + 24L * b;
            int xo = xOff + 32 * b;
            int qh = w.get(I32, wo + 4);
            ByteVector q = Kernels.load16(w, wo + 8);
            FloatVector t = Kernels.qx(q.and((byte) 0x0F).or(Kernels.spread(qh)), x, xo, FloatVector.zero(Kernels.F));
            t = Kernels.qx(q.lanewise(VectorOperators.LSHR, 4).or(Kernels.spread(qh >>> 16)), x, xo + 16, t);
            acc = t.fma(FloatVector.broadcast(Kernels.F, halfAt(w, wo)), acc);
            FloatVector xs = Kernels.xsum16(x, xo + 16, Kernels.xsum16(x, xo, FloatVector.zero(Kernels.F)));
            accM = xs.fma(FloatVector.broadcast(Kernels.F, halfAt(w, wo + 2)), accM);
        }
        return Kernels.sum(acc.add(accM));
    }

    @Override
    public float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n) {
        checkBlocks(type, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        float summs = 0;
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = wOff + 24L * b, xo = xqOff + 36L * b;
            float d = halfAt(w, wo) * halfAt(xq, xo);
            summs += halfAt(w, wo + 2) * halfAt(xq, xo + 2);
            int qh = w.get(I32, wo + 4);
            ByteVector q = Kernels.load16(w, wo + 8);
            ByteVector lo = q.and((byte) 0x0F).or(Kernels.spread(qh));
            ByteVector hi = q.lanewise(VectorOperators.LSHR, 4).or(Kernels.spread(qh >>> 16));
            FloatVector s = Kernels.mulf(hi, Kernels.load16(xq, xo + 20), Kernels.mulf(lo, Kernels.load16(xq, xo + 4), Kernels.zero()));
            acc = s.fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc) + summs;
    }

    /** Prefill columns: d * q per value (no min), then each block's min m, multiplied with the Q8_1 sums s. */
    @Override
    public void decodePrefillRow(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        Kernels.checkDecode(type, n, dst, dstOff, n / 32);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long o = wOff + 24L * b;
            float d = halfAt(w, o);
            int qh = w.get(I32, o + 4);
            ByteVector q = Kernels.load16(w, o + 8);
            Kernels.decode16(q, 0, 0xF, Kernels.spread(qh), 0, 0x10, 0, 0, d, 0f, dst, dstOff + 32 * b);
            Kernels.decode16(q, 4, 0xF, Kernels.spread(qh >>> 16), 0, 0x10, 0, 0, d, 0f, dst, dstOff + 32 * b + 16);
            dst[dstOff + n + b] = halfAt(w, o + 2);
        }
    }

    @Override
    public boolean prefillUsesActivationSums() {
        return true;
    }
}
