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

    /**
     * Floats per row of {@code n} weights that {@link #rowScales} makes: the type's sub-block scales decoded
     * once per layer (d times the 6- or 8-bit scale), so the decode kernel does no scale unpacking, fp16
     * conversion or int-to-float conversion per sub-block.
     */
    int rowScaleCount(int n);

    /** The row's sub-block scales as floats into {@code dst[dstOff .. + rowScaleCount(n))}, in sub-block order. */
    void rowScales(MemorySegment w, long wOff, int n, float[] dst, int dstOff);

    /**
     * Dot of {@code n} stored weights at {@code wOff}, whose scales {@link #rowScales} put at {@code sc[scOff ..]},
     * with the expanded activations {@code xf[0 .. n)}; {@code bsum} and {@code xd} are the same activation row's
     * integer 32-value sums and per-256 scales ({@link #q8kSums}), for terms the type takes from integer block
     * sums (the k-quant mins).
     */
    float dotFloatRow(MemorySegment w, long wOff, float[] sc, int scOff, float[] xf, int[] bsum, float[] xd, int n);

    /** Bounds of {@link #dotFloatRow(MemorySegment, long, float[], int, float[], int[], float[], int)}'s arrays. */
    default void checkRowOperands(int n, float[] sc, int scOff, float[] xf, int[] bsum, float[] xd) {
        int per = rowScaleCount(n);
        if (scOff < 0 || scOff + (long) per > sc.length || n > xf.length || n / 32 > bsum.length || n / 256 > xd.length) {
            throw new IndexOutOfBoundsException("expanded operands " + scOff + "+" + per + " / " + n + " outside arrays");
        }
    }

    /**
     * From a Q8_K row of {@code n} values at {@code xq + off}: each 32 values' integer sum (its two stored 16-value
     * sums) into {@code bsum[0 .. n / 32)} and each 256-value block's scale into {@code xd[0 .. n / 256)}.
     */
    static void q8kSums(MemorySegment xq, long off, int n, int[] bsum, float[] xd) {
        for (int i = 0; i < n / 256; i++) {
            long o = off + 292L * i;
            xd[i] = xq.get(F32, o);
            for (int j = 0; j < 8; j++) bsum[8 * i + j] = xq.get(I16, o + 260 + 4 * j) + xq.get(I16, o + 262 + 4 * j);
        }
    }

    java.lang.foreign.ValueLayout.OfShort I16 = java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    java.lang.foreign.ValueLayout.OfFloat F32 = java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    /** {@code xs[xsOff + b] = sum of xf[xfOff + 32 b .. + 32)} for {@code b < n / 32}. */
    static void blockSums(float[] xf, int xfOff, int n, float[] xs, int xsOff) {
        for (int b = 0; b < n / 32; b++) {
            float s = 0;
            for (int j = 0; j < 32; j++) s += xf[xfOff + 32 * b + j];
            xs[xsOff + b] = s;
        }
    }
}
