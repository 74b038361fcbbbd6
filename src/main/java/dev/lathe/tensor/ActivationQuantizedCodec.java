package dev.lathe.tensor;

import java.lang.foreign.MemorySegment;

/**
 * A quantized weight type whose matrix-vector product, like llama.cpp's CPU backend, first quantizes the
 * activations to {@link #activationType()} (ggml's {@code vec_dot_type}: Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL,
 * Q8_1 for Q4_1/Q5_1, Q8_K for the k-quants) and then multiplies blocks in integers
 * ({@code ggml_vec_dot_*}).
 */
public interface ActivationQuantizedCodec extends BlockCodec {
    /** llama.cpp's vec_dot_type for this weight type. */
    GgmlType activationType();

    /**
     * Dot product of {@code n} stored weights (at byte offset {@code wOff}) with activations already
     * quantized to {@link #activationType()} (at byte offset {@code xqOff}), as ggml_vec_dot_*_q8_*.
     * The integer block sums are exact; only the float scaling and accumulation order differ from
     * ggml's AVX kernels (relative differences around 1e-7). For speed, keep {@code xq} in a native
     * segment (e.g. {@code Arena.ofConfined().allocate(activationBytes(n), 64)}): Vector API loads from
     * heap-backed segments run several times slower on JDK 25.
     */
    float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xqOff, int n);

    /**
     * Quantizes activations the way llama.cpp's x86 CPU backend does before {@code vec_dot}
     * (quantize_row_q8_0 / q8_1 / q8_K of ggml-cpu-quants.c). For Q8_1 and Q8_K this equals
     * {@code BlockCodecs.get(activationType()).quantize(x, xOff, n, null, xq, xqOff)}; for Q8_0 it differs
     * from {@code quantize} (which is llama-quantize's quantize_row_q8_0_ref) in rare rounding ties:
     * the CPU path scales by 127/amax and rounds half to even, the reference by 1/(amax/127) and half away
     * from zero. Use this method for activations.
     */
    default void quantizeActivations(float[] x, int xOff, int n, MemorySegment xq, long xqOff) {
        ((ActivationQuantizer) BlockCodecs.get(activationType())).quantizeActivations(x, xOff, n, xq, xqOff);
    }

    /**
     * Decodes one stored weight row of {@code n} values to the float columns of the prefill GEMM
     * ({@link PanelGemm}): {@link PanelGemm#columns} floats at {@code dst[dstOff ..]} whose dot with the
     * expanded activations ({@link PanelGemm#expand}: {@code d * q} per value, then the stored block sums
     * when {@link #prefillUsesActivationSums}) equals {@link #dotQuantized} up to float rounding. The
     * default, the dequantized weights, fits every type whose dotQuantized is the dot of dequantized
     * weights with dequantized activations (the k-quants fold their mins in: their bsums are exact).
     */
    default void decodePrefillRow(MemorySegment w, long wOff, int n, float[] dst, int dstOff) {
        dequantize(w, wOff, dst, dstOff, n);
    }

    /**
     * True when {@link #dotQuantized} adds each weight block's min times the activation block's stored
     * fp16 sum (Q4_1 and Q5_1 with Q8_1, as ggml_vec_dot_q4_1_q8_1): the min cannot be folded into the
     * decoded weights, whose rows then carry one extra column per 32-block holding the min.
     */
    default boolean prefillUsesActivationSums() {
        return false;
    }

    /** Bytes of quantized activations needed for {@code n} values. */
    default long activationBytes(int n) {
        return activationType().bytesFor(n);
    }
}
