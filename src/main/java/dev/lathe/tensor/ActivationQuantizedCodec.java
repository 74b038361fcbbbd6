package dev.lathe.tensor;

import java.lang.foreign.MemorySegment;

/**
 * A quantized weight codec whose dot products run against activations that were quantized first, as
 * llama.cpp's CPU backend does ({@code vec_dot_type}): Q8_0, Q8_1 or Q8_K depending on the weight type.
 */
public interface ActivationQuantizedCodec extends BlockCodec {
    /** The type the activations are quantized to before {@link #dotQuantized}. */
    GgmlType activationType();

    /**
     * Dot product of {@code n} stored weights at {@code w[wOff ..]} with {@code n} activations stored at
     * {@code xq[xqOff ..]}, quantized with {@code BlockCodecs.get(activationType()).quantize(...)}.
     */
    float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n);
}
