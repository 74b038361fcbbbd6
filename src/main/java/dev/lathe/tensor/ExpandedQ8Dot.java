package dev.lathe.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A weight type with one fp16 scale per 32-value block whose activations are Q8_0 (Q4_0, Q8_0), and which
 * decodes (one activation row) through <em>expanded</em> operands: the weights' block scales converted to
 * floats once per tensor ({@link #blockScales}, kept by the layer), and the activation row converted once per
 * matmul into floats with its block scales already applied ({@link #expandActivations}), plus one float per
 * block for the type's constant offset. The inner loop is then left with the weights' quants, one scale
 * per block and fused multiply-adds: no fp16 conversion and no activation scale per block and row.
 * <p>
 * The sums equal {@link ActivationQuantizedCodec#dotQuantized} up to float rounding (the activation scale is
 * applied to each value instead of to each block's integer sum).
 */
public interface ExpandedQ8Dot extends ActivationQuantizedCodec {
    /** Each 32-value block's fp16 scale of the {@code n} stored weights at {@code wOff}, as floats into {@code dst[dstOff ..]}. */
    void blockScales(MemorySegment w, long wOff, int n, float[] dst, int dstOff);

    /** Floats {@code xa} needs per activation row of {@code n} values. */
    default int expandedLength(int n) {
        return n;
    }

    /**
     * Expands one Q8_0 activation row of {@code n} values at {@code xq + off} into {@code xa[0 ..
     * expandedLength(n))} and {@code xs[0 .. n / 32)} (what the type's kernel needs).
     */
    void expandActivations(MemorySegment xq, long off, int n, float[] xa, float[] xs);

    /**
     * Dot of {@code n} stored weights at {@code wOff}, whose block scales are {@code sc[scOff ..]}, with an
     * activation row expanded by {@link #expandActivations}.
     */
    float dotExpanded(MemorySegment w, long wOff, float[] sc, int scOff, float[] xa, float[] xs, int n);

    ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
}
