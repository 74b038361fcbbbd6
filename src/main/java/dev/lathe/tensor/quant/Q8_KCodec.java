package dev.lathe.tensor.quant;

import dev.lathe.LatheException;
import dev.lathe.tensor.ActivationQuantizer;
import dev.lathe.tensor.GgmlType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.lathe.tensor.quant.QuantMath.*;

/**
 * Q8_K: activation type of the k-quants: 256 int8, float32 d, 16 int16 sums of 16 (292 bytes).
 * Mirrors ggml-quants.c quantize_row_q8_K_ref, which is also what ggml-cpu's quantize_row_q8_K runs on
 * x86 (iscale = -127/max, nearest_int, clamp to 127, d = 1/iscale), and dequantize_row_q8_K.
 * For an all-zero block ggml leaves bsums unwritten; here they are zero.
 */
public final class Q8_KCodec extends QuantCodec implements ActivationQuantizer {
    public Q8_KCodec() {
        super(GgmlType.Q8_K);
    }

    @Override
    void dequantizeBlock(MemorySegment s, long o, float[] y, int yo) {
        float d = s.get(F32, o);
        for (int j = 0; j < 256; j++) y[yo + j] = d * s8(s, o + 4 + j);
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
        byte[] blk = new byte[292];
        for (int i = 0; i < n / 256; i++) {
            int b = xOff + 256 * i;
            float max = 0, amax = 0;
            boolean finite = true;
            for (int j = 0; j < 256; j++) {
                float v = x[b + j];
                float ax = Math.abs(v);
                finite &= ax <= Float.MAX_VALUE;
                if (ax > amax) {
                    amax = ax;
                    max = v;
                }
            }
            if (!finite) throw new LatheException("cannot quantize activations to Q8_K: non-finite value in block " + i);
            if (amax == 0) {
                java.util.Arrays.fill(blk, (byte) 0);
            } else {
                float iscale = -127.f / max;
                for (int j = 0; j < 256; j++) blk[4 + j] = (byte) Math.min(127, nearestInt(iscale * x[b + j]));
                for (int j = 0; j < 16; j++) {
                    int sum = 0;
                    for (int ii = 0; ii < 16; ii++) sum += blk[4 + 16 * j + ii];
                    Q4_1Codec.putShort(blk, 260 + 2 * j, (short) sum);
                }
                int bits = Float.floatToRawIntBits(1 / iscale);
                blk[0] = (byte) bits;
                blk[1] = (byte) (bits >> 8);
                blk[2] = (byte) (bits >> 16);
                blk[3] = (byte) (bits >> 24);
            }
            MemorySegment.copy(blk, 0, dst, ValueLayout.JAVA_BYTE, off + 292L * i, 292);
        }
    }
}
