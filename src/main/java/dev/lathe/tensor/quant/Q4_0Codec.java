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

    @Override
    public void blockScales(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        checkBlocks(type, n);
        for (int b = 0, nb = n / 32; b < nb; b++) dst[dstOff + b] = halfAt(w, wOff + 18L * b);
    }

    /**
     * With b = q ^ 0x80 as a signed byte (q = lo + 16 hi, the stored pair) and h = b >> 4, the weights are
     * lo - 8 = b - 8 - 16 h and hi - 8 = h, so a block's dot with activations (xl, xh) is
     * sum(b * xl + h * (xh - 16 xl)) - 8 sum(xl): {@code xa} holds xl and xh - 16 xl (times the activation
     * scale), {@code xs} the 8 sum(xl) per block, and the kernel needs two conversions and two multiply-adds
     * per 16 bytes instead of masking and offsetting both nibbles.
     */
    @Override
    public void expandActivations(MemorySegment xq, long off, int n, float[] xa, float[] xs) {
        checkBlocks(type, n);
        if (xa.length < n || xs.length < n / 32) throw new IndexOutOfBoundsException("expanded activations: arrays too short for " + n);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long o = off + 34L * b;
            float d = halfAt(xq, o);
            int sl = 0;
            for (int j = 0; j < 16; j++) {
                int xl = xq.get(ValueLayout.JAVA_BYTE, o + 2 + j), xh = xq.get(ValueLayout.JAVA_BYTE, o + 18 + j);
                xa[32 * b + j] = xl * d;
                xa[32 * b + 16 + j] = (xh - 16 * xl) * d;
                sl += xl;
            }
            xs[b] = 8 * sl * d;
        }
    }

    @Override
    public float dotExpanded(MemorySegment w, long wOff, float[] sc, int scOff, float[] xa, float[] xs, int n) {
        checkBlocks(type, n);
        int nb = n / 32;
        if (scOff < 0 || scOff + (long) nb > sc.length || n > xa.length || nb > xs.length) {
            throw new IndexOutOfBoundsException("expanded operands " + scOff + "+" + nb + " / " + n + " outside arrays");
        }
        if (Kernels.PARTS != 1) return dotExpandedScalar(w, wOff, sc, scOff, xa, xs, n);
        FloatVector acc = Kernels.zero(), z = acc;
        float corr = 0;
        for (int b = 0; b < nb; b++) {
            long wo = wOff + 18L * b;
            int xo = 32 * b;
            IntVector q = Kernels.widen(Kernels.load16(w, wo + 2).lanewise(VectorOperators.XOR, (byte) 0x80), 0);
            FloatVector s = Kernels.f(q).fma(FloatVector.fromArray(Kernels.F, xa, xo), z);
            s = Kernels.f(q.lanewise(VectorOperators.ASHR, 4)).fma(FloatVector.fromArray(Kernels.F, xa, xo + 16), s);
            float d = sc[scOff + b];
            acc = s.fma(FloatVector.broadcast(Kernels.F, d), acc);
            corr += d * xs[b];
        }
        return Kernels.sum(acc) - corr;
    }

    private float dotExpandedScalar(MemorySegment w, long wOff, float[] sc, int scOff, float[] xa, float[] xs, int n) {
        float s = 0;
        for (int b = 0; b < n / 32; b++) {
            long wo = wOff + 18L * b;
            float bs = 0;
            for (int j = 0; j < 16; j++) {
                int q = (byte) (u8(w, wo + 2 + j) ^ 0x80);
                bs += q * xa[32 * b + j] + (q >> 4) * xa[32 * b + 16 + j];
            }
            s += (bs - xs[b]) * sc[scOff + b];
        }
        return s;
    }

    /** Prefill columns: the dequantized weights (q - 8) * d, 16 at a time (same floats as dequantize). */
    @Override
    public void decodePrefillRow(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        Kernels.checkDecode(type, n, dst, dstOff, 0);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = wOff + 18L * b;
            float d = halfAt(w, wo);
            ByteVector q = Kernels.load16(w, wo + 2);
            Kernels.decode16(q, 0, 0xF, q, 0, 0, 0, 8, d, 0f, dst, dstOff + 32 * b);
            Kernels.decode16(q, 4, 0xF, q, 0, 0, 0, 8, d, 0f, dst, dstOff + 32 * b + 16);
        }
    }

}
