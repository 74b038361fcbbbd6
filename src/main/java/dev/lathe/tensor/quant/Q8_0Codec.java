package dev.lathe.tensor.quant;

import dev.lathe.LatheException;
import dev.lathe.tensor.ExpandedQ8Dot;
import dev.lathe.tensor.ActivationQuantizer;
import dev.lathe.tensor.GgmlType;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.lathe.tensor.quant.QuantMath.*;

/**
 * Q8_0: blocks of 32 int8 with an fp16 scale (34 bytes). Mirrors ggml-quants.c quantize_row_q8_0_ref
 * (what llama-quantize runs via quantize_q8_0; importance is ignored there too) and dequantize_row_q8_0;
 * {@link #quantizeActivations} mirrors ggml-cpu-quants.c quantize_row_q8_0 (AVX path) and
 * {@link #dotQuantized} ggml_vec_dot_q8_0_q8_0.
 */
public final class Q8_0Codec extends QuantCodec implements ExpandedQ8Dot, ActivationQuantizer {
    public Q8_0Codec() {
        super(GgmlType.Q8_0, 0);
    }

    @Override
    public GgmlType activationType() {
        return GgmlType.Q8_0;
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float d = halfAt(s, o);
        for (int j = 0; j < 32; j++) y[yo + j] = s8(s, o + 2 + j) * d;
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        byte[] blk = new byte[34];
        for (int i = 0; i < n / 32; i++) {
            int b = xo + 32 * i;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) {
                float v = Math.abs(x[b + j]);
                amax = amax > v ? amax : v;
            }
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            short h = fp16(d);
            blk[0] = (byte) h;
            blk[1] = (byte) (h >> 8);
            for (int j = 0; j < 32; j++) blk[2 + j] = (byte) cvtt(roundf(x[b + j] * id));
            MemorySegment.copy(blk, 0, dst, java.lang.foreign.ValueLayout.JAVA_BYTE, off + 34L * i, 34);
        }
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        quantizeRef(x, xo, n, dst, off); // quantize_q8_0 ignores quant_weights
    }

    @Override
    public void quantizeActivations(float[] x, int xOff, int n, MemorySegment dst, long off) {
        checkBlocks(type, n);
        byte[] blk = new byte[34];
        for (int i = 0; i < n / 32; i++) {
            int b = xOff + 32 * i;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]));
            if (!Float.isFinite(amax)) throw new LatheException("cannot quantize activations to Q8_0: non-finite value in block " + i);
            float d = amax / 127.f;
            float id = amax != 0.0f ? 127.f / amax : 0.0f;
            short h = fp16(d);
            blk[0] = (byte) h;
            blk[1] = (byte) (h >> 8);
            for (int j = 0; j < 32; j++) {
                int q = cvtt((float) Math.rint(x[b + j] * id)); // _mm256_round_ps + _mm256_cvtps_epi32
                blk[2 + j] = (byte) Math.max(-128, Math.min(127, q)); // packs: signed saturation
            }
            MemorySegment.copy(blk, 0, dst, java.lang.foreign.ValueLayout.JAVA_BYTE, off + 34L * i, 34);
        }
    }

    @Override
    public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
        Kernels.checkFloatDot(type, x, xOff, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = offset + 34L * b;
            int xo = xOff + 32 * b;
            FloatVector t = Kernels.qx(Kernels.load16(w, wo + 2), x, xo, FloatVector.zero(Kernels.F));
            t = Kernels.qx(Kernels.load16(w, wo + 18), x, xo + 16, t);
            acc = t.fma(FloatVector.broadcast(Kernels.F, halfAt(w, wo)), acc);
        }
        return Kernels.sum(acc);
    }

    @Override
    public float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n) {
        checkBlocks(type, n);
        FloatVector acc = FloatVector.zero(Kernels.F);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = wOff + 34L * b, xo = xqOff + 34L * b;
            float d = halfAt(w, wo) * halfAt(xq, xo);
            FloatVector s = Kernels.mulf(Kernels.load16(w, wo + 2), Kernels.load16(xq, xo + 2), Kernels.zero());
            s = Kernels.mulf(Kernels.load16(w, wo + 18), Kernels.load16(xq, xo + 18), s);
            acc = s.fma(FloatVector.broadcast(Kernels.F, d), acc);
        }
        return Kernels.sum(acc);
    }

    @Override
    public void blockScales(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        checkBlocks(type, n);
        for (int b = 0, nb = n / 32; b < nb; b++) dst[dstOff + b] = halfAt(w, wOff + 34L * b);
    }

    /** The activation quants times their block scale; {@code xs} is not used (Q8_0 has no offset). */
    @Override
    public void expandActivations(MemorySegment xq, long off, int n, float[] xa, float[] xs) {
        checkBlocks(type, n);
        if (xa.length < n) throw new IndexOutOfBoundsException("expanded activations: array too short for " + n);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long o = off + 34L * b;
            float d = halfAt(xq, o);
            for (int j = 0; j < 32; j++) xa[32 * b + j] = xq.get(ValueLayout.JAVA_BYTE, o + 2 + j) * d;
        }
    }

    @Override
    public float dotExpanded(MemorySegment w, long wOff, float[] sc, int scOff, float[] xa, float[] xs, int n) {
        checkBlocks(type, n);
        int nb = n / 32;
        if (scOff < 0 || scOff + (long) nb > sc.length || n > xa.length) {
            throw new IndexOutOfBoundsException("expanded operands " + scOff + "+" + nb + " / " + n + " outside arrays");
        }
        if (Kernels.PARTS != 1) return dotExpandedScalar(w, wOff, sc, scOff, xa, n);
        FloatVector acc = Kernels.zero(), z = acc;
        for (int b = 0; b < nb; b++) {
            long wo = wOff + 34L * b;
            int xo = 32 * b;
            FloatVector s = Kernels.f(Kernels.widen(Kernels.load16(w, wo + 2), 0)).fma(FloatVector.fromArray(Kernels.F, xa, xo), z);
            s = Kernels.f(Kernels.widen(Kernels.load16(w, wo + 18), 0)).fma(FloatVector.fromArray(Kernels.F, xa, xo + 16), s);
            acc = s.fma(FloatVector.broadcast(Kernels.F, sc[scOff + b]), acc);
        }
        return Kernels.sum(acc);
    }

    private float dotExpandedScalar(MemorySegment w, long wOff, float[] sc, int scOff, float[] xa, int n) {
        float s = 0;
        for (int b = 0; b < n / 32; b++) {
            long wo = wOff + 34L * b;
            float bs = 0;
            for (int j = 0; j < 32; j++) bs += w.get(ValueLayout.JAVA_BYTE, wo + 2 + j) * xa[32 * b + j];
            s += bs * sc[scOff + b];
        }
        return s;
    }

    /** Prefill columns: the dequantized weights q * d, 16 at a time (same floats as dequantize). */
    @Override
    public void decodePrefillRow(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        Kernels.checkDecode(type, n, dst, dstOff, 0);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long wo = wOff + 34L * b;
            float d = halfAt(w, wo);
            int o = dstOff + 32 * b;
            if (Kernels.PARTS == 1) {
                FloatVector vd = FloatVector.broadcast(Kernels.F, d);
                Kernels.f(Kernels.widen(Kernels.load16(w, wo + 2), 0)).mul(vd).intoArray(dst, o);
                Kernels.f(Kernels.widen(Kernels.load16(w, wo + 18), 0)).mul(vd).intoArray(dst, o + 16);
            } else {
                for (int j = 0; j < 32; j++) dst[o + j] = s8(w, wo + 2 + j) * d;
            }
        }
    }

}
