package dev.lathe.tensor.quant;

import dev.lathe.LatheException;
import dev.lathe.tensor.ActivationQuantizer;
import dev.lathe.tensor.GgmlType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.lathe.tensor.quant.QuantMath.*;

/**
 * Q8_1: activation type of Q4_1/Q5_1: 32 int8 with fp16 d and fp16 s = d * sum(q) (36 bytes).
 * quantize mirrors ggml-cpu-quants.c quantize_row_q8_1 on x86 (AVX: id = 127/amax, round half to even,
 * s from the float d); importance is ignored. dequantize is q * d (ggml has no dequantize for Q8_1).
 */
public final class Q8_1Codec extends QuantCodec implements ActivationQuantizer {
    public Q8_1Codec() {
        super(GgmlType.Q8_1);
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float d = halfAt(s, o);
        for (int j = 0; j < 32; j++) y[yo + j] = s8(s, o + 4 + j) * d;
    }

    @Override
    void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off) {
        quantizeActivations(x, xo, n, dst, off);
    }

    @Override
    void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off) {
        quantizeActivations(x, xo, n, dst, off);
    }

    @Override
    public void quantizeActivations(float[] x, int xOff, int n, MemorySegment dst, long off) {
        checkBlocks(type, n);
        byte[] blk = new byte[36];
        for (int i = 0; i < n / 32; i++) {
            int b = xOff + 32 * i;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]));
            if (!Float.isFinite(amax)) throw new LatheException("cannot quantize activations to Q8_1: non-finite value in block " + i);
            float d = amax / 127.f;
            float id = amax != 0.0f ? 127.f / amax : 0.0f;
            int sum = 0;
            for (int j = 0; j < 32; j++) {
                int q = cvtt((float) Math.rint(x[b + j] * id)); // _mm256_round_ps + _mm256_cvtps_epi32
                blk[4 + j] = (byte) Math.max(-128, Math.min(127, q)); // packs: signed saturation
                sum += q; // the s field sums the 32-bit values (wrapping), before saturation
            }
            Q4_1Codec.putShort(blk, 0, fp16(d));
            Q4_1Codec.putShort(blk, 2, fp16(d * sum));
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 36L * i, 36);
        }
    }
}
