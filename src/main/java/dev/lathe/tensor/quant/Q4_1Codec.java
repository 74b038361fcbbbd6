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
 * Q4_1: 32 weights as q * d + m, q in [0, 15], fp16 d and m (20 bytes). Mirrors ggml-quants.c
 * quantize_row_q4_1_ref, quantize_row_q4_1_impl (importance: make_qkx3_quants), dequantize_row_q4_1
 * and ggml_vec_dot_q4_1_q8_1.
 */
public final class Q4_1Codec extends QuantCodec implements ActivationQuantizedCodec {
    public Q4_1Codec() {
        super(GgmlType.Q4_1, 0, 2);
    }

    @Override
    public GgmlType activationType() {
        return GgmlType.Q8_1;
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float d = halfAt(s, o), m = halfAt(s, o + 2);
        for (int j = 0; j < 16; j++) {
            int q = u8(s, o + 4 + j);
            y[yo + j] = (q & 0x0F) * d + m;
            y[yo + j + 16] = (q >> 4) * d + m;
        }
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        byte[] blk = new byte[20];
        for (int i = 0; i < n / 32; i++) {
            int b = xo + 32 * i;
            float min = Float.MAX_VALUE, max = -Float.MAX_VALUE;
            for (int j = 0; j < 32; j++) {
                float v = x[b + j];
                if (v < min) min = v;
                if (v > max) max = v;
            }
            float d = (max - min) / 15;
            float id = d != 0 ? 1.0f / d : 0.0f;
            putShort(blk, 0, fp16(d));
            putShort(blk, 2, fp16(min));
            for (int j = 0; j < 16; j++) {
                float x0 = (x[b + j] - min) * id;
                float x1 = (x[b + 16 + j] - min) * id;
                int xi0 = Math.min(15, (byte) cvtt(x0 + 0.5f)) & 0xff;
                int xi1 = Math.min(15, (byte) cvtt(x1 + 0.5f)) & 0xff;
                blk[4 + j] = (byte) (xi0 | (xi1 << 4));
            }
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 20L * i, 20);
        }
    }

    static void putShort(byte[] b, int o, short h) {
        b[o] = (byte) h;
        b[o + 1] = (byte) (h >> 8);
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        float sumX2 = 0;
        for (int j = 0; j < n; j++) sumX2 += x[xo + j] * x[xo + j];
        float sigma2 = sumX2 / n;
        float[] weight = new float[32];
        byte[] L = new byte[32], laux = new byte[32];
        float[] min = new float[1];
        byte[] blk = new byte[20];
        for (int ib = 0; ib < n / 32; ib++) {
            int b = xo + 32 * ib;
            for (int j = 0; j < 32; j++) weight[j] = qw[32 * ib + j] * sqrtf(sigma2 + x[b + j] * x[b + j]);
            float d = makeQkxQuants(true, 32, 15, x, b, weight, 0, L, 0, min, 0, laux, -0.9f, 0.05f, 36, false);
            putShort(blk, 0, fp16(d));
            putShort(blk, 2, fp16(-min[0]));
            for (int j = 0; j < 16; j++) blk[4 + j] = (byte) (L[j] | (L[j + 16] << 4));
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 20L * ib, 20);
        }
    }

    @Override
    public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
        Kernels.checkFloatDot(type, x, xOff, n);
        FloatVector acc = FloatVector.zero(Kernels.F), accM = FloatVector.zero(Kernels.F);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = offset + 20L * b;
            int xo = xOff + 32 * b;
            ByteVector q = Kernels.load16(w, wo + 4);
            FloatVector t = Kernels.qx(q.and((byte) 0x0F), x, xo, FloatVector.zero(Kernels.F));
            t = Kernels.qx(q.lanewise(VectorOperators.LSHR, 4), x, xo + 16, t);
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
            long wo = wOff + 20L * b, xo = xqOff + 36L * b;
            float d = halfAt(w, wo) * halfAt(xq, xo);
            summs += halfAt(w, wo + 2) * halfAt(xq, xo + 2);
            ByteVector q = Kernels.load16(w, wo + 4);
            ByteVector lo = q.and((byte) 0x0F);
            ByteVector hi = q.lanewise(VectorOperators.LSHR, 4);
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
            long o = wOff + 20L * b;
            float d = halfAt(w, o);
            ByteVector q = Kernels.load16(w, o + 4);
            Kernels.decode16(q, 0, 0xF, q, 0, 0, 0, 0, d, 0f, dst, dstOff + 32 * b);
            Kernels.decode16(q, 4, 0xF, q, 0, 0, 0, 0, d, 0f, dst, dstOff + 32 * b + 16);
            dst[dstOff + n + b] = halfAt(w, o + 2);
        }
    }

    @Override
    public boolean prefillUsesActivationSums() {
        return true;
    }
}
