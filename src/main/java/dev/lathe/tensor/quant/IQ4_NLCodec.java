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
 * IQ4_NL: 32 weights as d * kvalues_iq4nl[q] with a non-linear 16-entry grid; fp16 d (18 bytes).
 * Mirrors ggml-quants.c quantize_iq4_nl (what llama-quantize calls: quantize_row_iq4_nl_impl with
 * ntry = 7, weights x^2 or qw * sqrt(sigma2 + x^2)), dequantize_row_iq4_nl and ggml_vec_dot_iq4_nl_q8_0.
 */
public final class IQ4_NLCodec extends QuantCodec implements ActivationQuantizedCodec {
    static final byte[] KVALUES = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    private static final ByteVector TABLE = ByteVector.fromArray(Kernels.B16, KVALUES, 0);

    public IQ4_NLCodec() {
        super(GgmlType.IQ4_NL, 0);
    }

    @Override
    public GgmlType activationType() {
        return GgmlType.Q8_0;
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float d = halfAt(s, o);
        for (int j = 0; j < 16; j++) {
            int q = u8(s, o + 2 + j);
            y[yo + j] = d * KVALUES[q & 0xf];
            y[yo + j + 16] = d * KVALUES[q >> 4];
        }
    }

    /** best_index_int8 over the 16 grid values. */
    static int bestIndex(float x) {
        if (x <= KVALUES[0]) return 0;
        if (x >= KVALUES[15]) return 15;
        int ml = 0, mu = 15;
        while (mu - ml > 1) {
            int mav = (ml + mu) / 2;
            if (x < KVALUES[mav]) mu = mav;
            else ml = mav;
        }
        return x - KVALUES[mu - 1] < KVALUES[mu] - x ? mu - 1 : mu;
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        quantizeRow(x, xo, n, null, dst, off);
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        quantizeRow(x, xo, n, qw, dst, off);
    }

    private void quantizeRow(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        final int ntry = 7;
        float[] weight = new float[32];
        int[] L = new int[32];
        byte[] blk = new byte[18];
        for (int ib = 0; ib < n / 32; ib++) {
            int b = xo + 32 * ib;
            float sigma2 = 0;
            for (int j = 0; j < 32; ++j) sigma2 += x[b + j] * x[b + j];
            sigma2 *= 2.f / 32;
            if (qw != null) {
                for (int j = 0; j < 32; ++j) weight[j] = qw[32 * ib + j] * sqrtf(sigma2 + x[b + j] * x[b + j]);
            } else {
                for (int j = 0; j < 32; ++j) weight[j] = x[b + j] * x[b + j];
            }
            float amax = 0, max = 0;
            for (int j = 0; j < 32; ++j) {
                float ax = Math.abs(x[b + j]);
                if (ax > amax) {
                    amax = ax;
                    max = x[b + j];
                }
            }
            float scale;
            if (amax < GROUP_MAX_EPS) {
                scale = 0;
            } else {
                float d = -max / KVALUES[0];
                float id = 1 / d;
                float sumqx = 0, sumq2 = 0;
                for (int j = 0; j < 32; ++j) {
                    float al = id * x[b + j];
                    int l = bestIndex(al);
                    float q = KVALUES[l];
                    float w = weight[j];
                    sumqx += w * q * x[b + j];
                    sumq2 += w * q * q;
                }
                d = sumqx / sumq2;
                float best = d * sumqx;
                for (int itry = -ntry; itry <= ntry; ++itry) {
                    id = (itry + KVALUES[0]) / max;
                    sumqx = sumq2 = 0;
                    for (int j = 0; j < 32; ++j) {
                        float al = id * x[b + j];
                        int l = bestIndex(al);
                        float q = KVALUES[l];
                        float w = weight[j];
                        sumqx += w * q * x[b + j];
                        sumq2 += w * q * q;
                    }
                    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                        d = sumqx / sumq2;
                        best = d * sumqx;
                    }
                }
                scale = d;
            }
            Q4_1Codec.putShort(blk, 0, fp16(scale));
            float id = scale != 0 ? 1 / scale : 0;
            for (int j = 0; j < 32; ++j) L[j] = bestIndex(id * x[b + j]);
            for (int j = 0; j < 16; ++j) blk[2 + j] = (byte) (L[j] | (L[16 + j] << 4));
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 18L * ib, 18);
        }
    }

    @Override
    public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
        Kernels.checkFloatDot(type, x, xOff, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = offset + 18L * b;
            int xo = xOff + 32 * b;
            ByteVector q = Kernels.load16(w, wo + 2);
            FloatVector t = Kernels.qx(q.and((byte) 0x0F).selectFrom(TABLE), x, xo, FloatVector.zero(Kernels.F));
            t = Kernels.qx(q.lanewise(VectorOperators.LSHR, 4).selectFrom(TABLE), x, xo + 16, t);
            acc = t.fma(FloatVector.broadcast(Kernels.F, halfAt(w, wo)), acc);
        }
        return Kernels.sum(acc);
    }

    @Override
    public float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n) {
        checkBlocks(type, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = wOff + 18L * b, xo = xqOff + 34L * b;
            float d = halfAt(w, wo) * halfAt(xq, xo);
            ByteVector q = Kernels.load16(w, wo + 2);
            ByteVector lo = q.and((byte) 0x0F).selectFrom(TABLE);
            ByteVector hi = q.lanewise(VectorOperators.LSHR, 4).selectFrom(TABLE);
            FloatVector s = Kernels.mulf(hi, Kernels.load16(xq, xo + 18), Kernels.mulf(lo, Kernels.load16(xq, xo + 2), Kernels.zero()));
            acc = s.fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc);
    }
}
