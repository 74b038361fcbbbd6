package dev.lathe.tensor;

import java.lang.foreign.MemorySegment;

/**
 * A weight type whose decode (one activation row) runs on the activation row <em>expanded</em> to floats:
 * the row is quantized to the type's vec_dot type as usual (Q8_K for the k-quants), then expanded once per
 * matmul to its values {@code d * q} ({@link PanelGemm#expand} with one lane) and the sums of each 32 of them
 * ({@link #blockSums}). The weight kernel then only decodes its own quants: no per-row widening and
 * conversion of the activation bytes, and the k-quant mins meet the block sums once per sub-block. The result
 * equals {@link ActivationQuantizedCodec#dotQuantized} up to float rounding (float sums of exact products
 * instead of integer block sums scaled in float), as for the prefill route ({@link PanelGemm}).
 */
public interface FloatRowDot extends ActivationQuantizedCodec {
    /**
     * Dot of {@code n} stored weights at {@code wOff} with the expanded activations {@code xf[xfOff ..]} and
     * their 32-value sums {@code xs[xsOff ..]}.
     */
    float dotFloatRow(MemorySegment w, long wOff, float[] xf, int xfOff, float[] xs, int xsOff, int n);

    /** {@code xs[xsOff + b] = sum of xf[xfOff + 32 b .. + 32)} for {@code b < n / 32}. */
    static void blockSums(float[] xf, int xfOff, int n, float[] xs, int xsOff) {
        for (int b = 0; b < n / 32; b++) {
            float s = 0;
            for (int j = 0; j < 32; j++) s += xf[xfOff + 32 * b + j];
            xs[xsOff + b] = s;
        }
    }
}
