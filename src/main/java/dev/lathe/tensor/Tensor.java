package dev.lathe.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A named tensor: element type, shape and the bytes behind it (usually a slice of a memory-mapped file).
 * The shape is in row-major (numpy/PyTorch) order, outermost dimension first, so a weight matrix of a
 * linear layer is {@code [out, in]} and each of its {@code out} rows holds {@code in} weights, stored as
 * {@code in / blockSize} blocks for quantized types. (GGUF's {@code ne} is this shape reversed.)
 */
public record Tensor(String name, GgmlType type, long[] shape, MemorySegment data) {

    public static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    public Tensor {
        shape = shape.clone();
        long n = numElements(shape);
        long cols = shape.length == 0 ? 1 : shape[shape.length - 1];
        if (cols % type.blockSize != 0) {
            throw new IllegalArgumentException(name + ": row length " + cols + " is not a multiple of " + type + " block size " + type.blockSize);
        }
        long need = type.bytesFor(n);
        if (data.byteSize() != need) {
            throw new IllegalArgumentException(name + ": " + data.byteSize() + " bytes for shape " + Arrays.toString(shape) + " of " + type + ", expected " + need);
        }
    }

    public static long numElements(long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public long numElements() {
        return numElements(shape);
    }

    /** Number of rows: the product of every dimension but the last (1 for a vector). */
    public long rows() {
        return shape.length <= 1 ? 1 : numElements() / shape[shape.length - 1];
    }

    /** Length of a row: the last dimension. */
    public long cols() {
        return shape.length == 0 ? 1 : shape[shape.length - 1];
    }

    public long rowBytes() {
        return type.bytesFor(cols());
    }

    public int dims() {
        return shape.length;
    }

    /** GGUF's ne: the shape reversed. */
    public long[] ne() {
        long[] ne = new long[shape.length];
        for (int i = 0; i < shape.length; i++) ne[i] = shape[shape.length - 1 - i];
        return ne;
    }

    @Override
    public String toString() {
        return name + " " + type + " " + Arrays.toString(shape);
    }

    @Override
    public boolean equals(Object o) {
        return this == o;
    }

    @Override
    public int hashCode() {
        return System.identityHashCode(this);
    }
}
