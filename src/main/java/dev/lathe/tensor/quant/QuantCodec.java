package dev.lathe.tensor.quant;

import dev.lathe.tensor.BlockCodec;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.VectorKernels;

import java.lang.foreign.MemorySegment;

/**
 * Common plumbing of the block codecs: argument checks, block loops, and a float-activation dot that
 * decodes up to 256 weights at a time and uses the F32 vector kernel.
 */
abstract class QuantCodec implements BlockCodec {
    final GgmlType type;
    final int qk;
    final int bytes;

    /** Byte offsets of the fp16 scale fields in a block, checked after quantization. */
    private final int[] halfFields;

    QuantCodec(GgmlType type, int... halfFields) {
        this.type = type;
        this.qk = type.blockSize;
        this.bytes = type.typeSize;
        this.halfFields = halfFields;
    }

    @Override
    public final GgmlType type() {
        return type;
    }

    /** Decodes one block at byte offset o into y[yo .. yo + qk). */
    abstract void dequantizeBlock(MemorySegment s, long o, float[] y, int yo);

    /**
     * Encodes n values (one or more whole rows) with no importance: the path llama-quantize takes
     * without an imatrix.
     */
    abstract void quantizeRef(float[] x, int xo, int n, MemorySegment dst, long off);

    /** Encodes one row of n values with importance weights qw[0 .. n). */
    abstract void quantizeWeighted(float[] x, int xo, int n, float[] qw, MemorySegment dst, long off);

    @Override
    public final void dequantize(MemorySegment src, long offset, float[] dst, int dstOff, int n) {
        QuantMath.checkBlocks(type, n);
        int nb = n / qk;
        for (int b = 0; b < nb; b++) dequantizeBlock(src, offset + (long) b * bytes, dst, dstOff + b * qk);
    }

    /**
     * Without importance, any number of whole blocks; with importance, {@code n} is one row (llama.cpp
     * computes row statistics such as sigma^2 over the row for Q4_0/Q4_1/Q5_0/Q5_1).
     */
    @Override
    public final void quantize(float[] src, int srcOff, int n, float[] importance, MemorySegment dst, long offset) {
        QuantMath.checkQuantizeArgs(type, src, srcOff, n, importance, dst, offset);
        if (n == 0) return;
        if (importance == null) quantizeRef(src, srcOff, n, dst, offset);
        else quantizeWeighted(src, srcOff, n, importance, dst, offset);
        validate(dst, offset, n);
    }

    /**
     * ggml_validate_row_data, which llama-quantize runs on every quantized tensor: a scale that overflowed
     * fp16 (finite weights beyond roughly +-5e5), or a NaN scale (importance-weighted searches on rows
     * whose squares underflow, e.g. |w| ~ 1e-30), makes llama-quantize fail instead of writing the file.
     */
    private void validate(MemorySegment dst, long offset, int n) {
        for (int b = 0, nb = n / qk; b < nb; b++) {
            for (int f : halfFields) {
                short h = dst.get(QuantMath.I16, offset + (long) b * bytes + f);
                if ((h & 0x7c00) == 0x7c00) {
                    throw new dev.lathe.LatheException("cannot quantize to " + type + ": the fp16 scale of block " + b
                            + " is not finite (" + (((h & 0x3ff) != 0) ? "NaN from a degenerate scale search" : "weights too large for this type") + ")");
                }
            }
        }
    }

    @Override
    public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
        QuantMath.checkBlocks(type, n);
        int chunk = Math.max(qk, 256 / qk * qk);
        float[] buf = new float[chunk];
        float s = 0;
        int i = 0;
        while (i < n) {
            int m = Math.min(chunk, n - i);
            for (int b = 0; b < m; b += qk) dequantizeBlock(w, offset + (long) (i + b) / qk * bytes, buf, b);
            s += VectorKernels.dotF32(buf, 0, x, xOff + i, m);
            i += m;
        }
        return s;
    }
}
