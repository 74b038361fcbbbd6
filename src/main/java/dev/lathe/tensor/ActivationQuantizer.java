package dev.lathe.tensor;

import java.lang.foreign.MemorySegment;

/** The activation types (Q8_0, Q8_1, Q8_K): llama.cpp's x86 CPU quantization of a float row. */
public interface ActivationQuantizer extends BlockCodec {
    /**
     * Quantizes {@code n} activations (a multiple of the block size) like ggml-cpu's quantize_row_q8_*
     * on x86 (AVX2/AVX-512 build). Throws LatheException if a block holds NaN or an infinity.
     */
    void quantizeActivations(float[] x, int xOff, int n, MemorySegment dst, long off);
}
