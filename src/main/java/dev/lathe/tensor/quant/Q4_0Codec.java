package dev.lathe.tensor.quant;

import dev.lathe.tensor.ExpandedQ8Dot;
import dev.lathe.tensor.GgmlType;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.lathe.tensor.quant.QuantMath.*;

/**
 * Q4_0: 32 weights as 4-bit (q - 8) * d, fp16 d (18 bytes). Mirrors ggml-quants.c quantize_row_q4_0_ref
 * (no importance), quantize_row_q4_0_impl (importance: make_qx_quants with weights
 * qw * sqrt(sigma2 + x^2), sigma2 over the row), dequantize_row_q4_0, and ggml_vec_dot_q4_0_q8_0.
 */
public final class Q4_0Codec extends QuantCodec implements ExpandedQ8Dot {
    public Q4_0Codec() {
        super(GgmlType.Q4_0, 0);
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
            y[yo + j] = ((q & 0x0F) - 8) * d;
            y[yo + j + 16] = ((q >> 4) - 8) * d;
        }
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        byte[] blk = new byte[18];
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
            float d = max / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            short h = fp16(d);
            blk[0] = (byte) h;
            blk[1] = (byte) (h >> 8);
            for (int j = 0; j < 16; j++) {
                float x0 = x[b + j] * id;
                float x1 = x[b + 16 + j] * id;
                int xi0 = Math.min(15, (byte) cvtt(x0 + 8.5f)) & 0xff;
                int xi1 = Math.min(15, (byte) cvtt(x1 + 8.5f)) & 0xff;
                blk[2 + j] = (byte) (xi0 | (xi1 << 4));
            }
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 18L * i, 18);
        }
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        float sumX2 = 0;
        for (int j = 0; j < n; j++) sumX2 += x[xo + j] * x[xo + j];
        float sigma2 = sumX2 / n;
        float[] weight = new float[32];
        byte[] L = new byte[32];
        byte[] blk = new byte[18];
        for (int ib = 0; ib < n / 32; ib++) {
            int b = xo + 32 * ib;
            for (int j = 0; j < 32; j++) weight[j] = qw[32 * ib + j] * sqrtf(sigma2 + x[b + j] * x[b + j]);
            float d = makeQxQuants(32, 8, x, b, L, 0, 1, weight, 0);
            short h = fp16(d);
            blk[0] = (byte) h;
            blk[1] = (byte) (h >> 8);
            for (int j = 0; j < 16; j++) blk[2 + j] = (byte) (L[j] | (L[j + 16] << 4));
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
            FloatVector t = Kernels.qx(q.and((byte) 0x0F).sub((byte) 8), x, xo, FloatVector.zero(Kernels.F));
            t = Kernels.qx(q.lanewise(VectorOperators.LSHR, 4).sub((byte) 8), x, xo + 16, t);
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
            FloatVector s;
            if (Kernels.PARTS == 1) {
                // 16-bit lanes: lane j holds (lo_j - 8) * x_j + (hi_j - 8) * x_(j+16), exact in short
                // (|sum| <= 2048) and equal to the float lanes of the generic path, so results are identical
                ShortVector q = Kernels.widenS(Kernels.load16(w, wo + 2));
                ShortVector lo = q.and((short) 0x0F).sub((short) 8);
                ShortVector hi = q.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F).sub((short) 8);
                ShortVector p = lo.mul(Kernels.widenS(Kernels.load16(xq, xo + 2))).add(hi.mul(Kernels.widenS(Kernels.load16(xq, xo + 18))));
                s = Kernels.f(Kernels.widenI(p));
            } else {
                ByteVector q = Kernels.load16(w, wo + 2);
                ByteVector lo = q.and((byte) 0x0F).sub((byte) 8);
                ByteVector hi = q.lanewise(VectorOperators.LSHR, 4).sub((byte) 8);
                s = Kernels.mulf(hi, Kernels.load16(xq, xo + 18), Kernels.mulf(lo, Kernels.load16(xq, xo + 2), Kernels.zero()));
            }
            acc = s.fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc);
    }

    /** Two activation rows (four make C2 give up on the loop body) per weight-block decode; per row the same operations as {@link #dotQuantized}. */
    @Override
    public void dotQuantizedRows(MemorySegment w, long wOff, MemorySegment xq, long xqOff, long xqStride, int rows, int n,
                                 float[] out, int outOff, int outStride) {
        checkBlocks(type, n);
        int i = 0;
        if (Kernels.PARTS == 1) {
            for (; i + 2 <= rows; i += 2) {
                long x0 = xqOff + i * xqStride, x1 = x0 + xqStride;
                FloatVector a0 = Kernels.zero(), a1 = a0, z = a0;
                for (int b = 0, nb = n / 32; b < nb; b++) {
                    long wo = wOff + 18L * b, xb = 34L * b;
                    float dw = halfAt(w, wo);
                    IntVector q = Kernels.widen(Kernels.load16(w, wo + 2), 0);
                    FloatVector lo = Kernels.f(q.and(0x0F).sub(8));
                    FloatVector hi = Kernels.f(q.lanewise(VectorOperators.ASHR, 4).and(0x0F).sub(8));
                    a0 = hi.fma(Kernels.f(Kernels.widen(Kernels.load16(xq, x0 + xb + 18), 0)), lo.fma(Kernels.f(Kernels.widen(Kernels.load16(xq, x0 + xb + 2), 0)), z))
                            .fma(FloatVector.broadcast(Kernels.F, dw * halfAt(xq, x0 + xb)), a0);
                    a1 = hi.fma(Kernels.f(Kernels.widen(Kernels.load16(xq, x1 + xb + 18), 0)), lo.fma(Kernels.f(Kernels.widen(Kernels.load16(xq, x1 + xb + 2), 0)), z))
                            .fma(FloatVector.broadcast(Kernels.F, dw * halfAt(xq, x1 + xb)), a1);
                }
                out[outOff + i * outStride] = Kernels.sum(a0);
                out[outOff + (i + 1) * outStride] = Kernels.sum(a1);
            }
        }
        for (; i < rows; i++) out[outOff + i * outStride] = dotQuantized(w, wOff, xq, xqOff + i * xqStride, n);
    }

    @Override
    public float dotExpanded(MemorySegment w, long wOff, float[] xf, int xfOff, float[] xd, int xdOff, int n) {
        checkBlocks(type, n);
        if (xfOff < 0 || xdOff < 0 || xfOff + (long) n > xf.length || xdOff + (long) n / 32 > xd.length) {
            throw new IndexOutOfBoundsException("expanded activations " + xfOff + "+" + n + " / " + xdOff + " outside arrays");
        }
        if (Kernels.PARTS != 1) return dotExpandedScalar(w, wOff, xf, xfOff, xd, xdOff, n);
        FloatVector acc = Kernels.zero(), z = acc;
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = wOff + 18L * b;
            int xo = xfOff + 32 * b;
            IntVector q = Kernels.widen(Kernels.load16(w, wo + 2), 0);
            FloatVector lo = Kernels.f(q.and(0x0F).sub(8));
            FloatVector hi = Kernels.f(q.lanewise(VectorOperators.ASHR, 4).and(0x0F).sub(8));
            FloatVector s = lo.fma(FloatVector.fromArray(Kernels.F, xf, xo), z);
            s = hi.fma(FloatVector.fromArray(Kernels.F, xf, xo + 16), s);
            acc = s.fma(FloatVector.broadcast(Kernels.F, halfAt(w, wo) * xd[xdOff + b]), acc);
        }
        return Kernels.sum(acc);
    }

    /** Two activation rows per weight-block decode (four make C2 give up on the loop body). */
    @Override
    public void dotExpandedRows(MemorySegment w, long wOff, float[] xf, int xfOff, float[] xd, int xdOff, int rows, int n,
                                float[] out, int outOff, int outStride) {
        checkBlocks(type, n);
        int nb = n / 32, i = 0;
        if (xfOff < 0 || xdOff < 0 || xfOff + (long) rows * n > xf.length || xdOff + (long) rows * nb > xd.length) {
            throw new IndexOutOfBoundsException("expanded activations of " + rows + " rows outside arrays");
        }
        if (Kernels.PARTS == 1) {
            for (; i + 2 <= rows; i += 2) {
                int f0 = xfOff + i * n, f1 = f0 + n, d0 = xdOff + i * nb, d1 = d0 + nb;
                FloatVector a0 = Kernels.zero(), a1 = a0, z = a0;
                for (int b = 0; b < nb; b++) {
                    long wo = wOff + 18L * b;
                    int xo = 32 * b;
                    IntVector q = Kernels.widen(Kernels.load16(w, wo + 2), 0);
                    FloatVector lo = Kernels.f(q.and(0x0F).sub(8));
                    FloatVector hi = Kernels.f(q.lanewise(VectorOperators.ASHR, 4).and(0x0F).sub(8));
                    float dw = halfAt(w, wo);
                    FloatVector s0 = hi.fma(FloatVector.fromArray(Kernels.F, xf, f0 + xo + 16), lo.fma(FloatVector.fromArray(Kernels.F, xf, f0 + xo), z));
                    FloatVector s1 = hi.fma(FloatVector.fromArray(Kernels.F, xf, f1 + xo + 16), lo.fma(FloatVector.fromArray(Kernels.F, xf, f1 + xo), z));
                    a0 = s0.fma(FloatVector.broadcast(Kernels.F, dw * xd[d0 + b]), a0);
                    a1 = s1.fma(FloatVector.broadcast(Kernels.F, dw * xd[d1 + b]), a1);
                }
                out[outOff + i * outStride] = Kernels.sum(a0);
                out[outOff + (i + 1) * outStride] = Kernels.sum(a1);
            }
        }
        for (; i < rows; i++) out[outOff + i * outStride] = dotExpanded(w, wOff, xf, xfOff + i * n, xd, xdOff + i * nb, n);
    }

    private float dotExpandedScalar(MemorySegment w, long wOff, float[] xf, int xfOff, float[] xd, int xdOff, int n) {
        float s = 0;
        for (int b = 0; b < n / 32; b++) {
            long wo = wOff + 18L * b;
            float d = halfAt(w, wo) * xd[xdOff + b];
            float bs = 0;
            for (int j = 0; j < 16; j++) {
                int q = u8(w, wo + 2 + j);
                bs += ((q & 0x0F) - 8) * xf[xfOff + 32 * b + j] + ((q >> 4) - 8) * xf[xfOff + 32 * b + j + 16];
            }
            s += bs * d;
        }
        return s;
    }

    @Override
    public void decodeRow(MemorySegment w, long wOff, int n, float[] wf, int wfOff, float[] wd, int wdOff) {
        checkBlocks(type, n);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = wOff + 18L * b;
            wd[wdOff + b] = halfAt(w, wo);
            if (Kernels.PARTS == 1) {
                IntVector q = Kernels.widen(Kernels.load16(w, wo + 2), 0);
                Kernels.f(q.and(0x0F).sub(8)).intoArray(wf, wfOff + 32 * b);
                Kernels.f(q.lanewise(VectorOperators.ASHR, 4).and(0x0F).sub(8)).intoArray(wf, wfOff + 32 * b + 16);
                continue;
            }
            for (int j = 0; j < 16; j++) {
                int q = u8(w, wo + 2 + j);
                wf[wfOff + 32 * b + j] = (q & 0x0F) - 8;
                wf[wfOff + 32 * b + j + 16] = (q >> 4) - 8;
            }
        }
    }
}
