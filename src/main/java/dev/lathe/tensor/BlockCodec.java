package dev.lathe.tensor;

import java.lang.foreign.MemorySegment;

/**
 * One row of the type table: how a tensor element type is decoded, encoded and multiplied. {@code n}
 * counts weights and is always a multiple of {@link GgmlType#blockSize}; offsets are byte offsets into the
 * segment where the first block starts.
 */
public interface BlockCodec {
    GgmlType type();

    /** Decodes {@code n} weights into {@code dst[dstOff ..]}. */
    void dequantize(MemorySegment src, long offset, float[] dst, int dstOff, int n);

    /**
     * Encodes {@code n} weights. {@code importance} (may be null) holds a non-negative weight per input
     * column, like llama.cpp's {@code quant_weights} (the importance matrix), of length n.
     */
    void quantize(float[] src, int srcOff, int n, float[] importance, MemorySegment dst, long offset);

    /** Dot product of {@code n} stored weights with float activations {@code x[xOff ..]}. */
    float dot(MemorySegment w, long offset, float[] x, int xOff, int n);
}
