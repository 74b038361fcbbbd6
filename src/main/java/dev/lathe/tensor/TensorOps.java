package dev.lathe.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** Whole-tensor conversions. */
public final class TensorOps {
    private TensorOps() {}

    /** Decodes a whole tensor (any supported type, integers widened) into a new float array. */
    public static float[] toFloats(Tensor t) {
        long n = t.numElements();
        if (n > Integer.MAX_VALUE - 16) throw new IllegalArgumentException(t.name() + ": too large for a float array");
        float[] out = new float[(int) n];
        MemorySegment d = t.data();
        switch (t.type()) {
            case F64 -> { for (int i = 0; i < n; i++) out[i] = (float) d.get(ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 8L * i); }
            case I64 -> { for (int i = 0; i < n; i++) out[i] = d.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 8L * i); }
            case I32 -> { for (int i = 0; i < n; i++) out[i] = d.get(Tensor.I32_LE, 4L * i); }
            case I16 -> { for (int i = 0; i < n; i++) out[i] = d.get(Tensor.I16_LE, 2L * i); }
            case I8 -> { for (int i = 0; i < n; i++) out[i] = d.get(ValueLayout.JAVA_BYTE, i); }
            default -> {
                BlockCodec c = BlockCodecs.get(t.type());
                long rows = t.rows();
                int cols = (int) t.cols();
                long rb = t.rowBytes();
                for (long r = 0; r < rows; r++) c.dequantize(d, r * rb, out, (int) (r * cols), cols);
            }
        }
        return out;
    }

    /** Reads an I32 tensor as ints. */
    public static int[] toInts(Tensor t) {
        if (t.type() != GgmlType.I32) throw new IllegalArgumentException(t.name() + " is " + t.type() + ", not I32");
        int[] out = new int[(int) t.numElements()];
        MemorySegment.copy(t.data(), Tensor.I32_LE, 0, out, 0, out.length);
        return out;
    }

    /**
     * An F32 tensor that views {@code values} without copying them (the array must not change while the tensor is
     * in use): for weights computed in memory, where a copy per tensor would double the peak heap.
     */
    public static Tensor viewFloats(String name, long[] shape, float[] values) {
        long n = 1;
        for (long d : shape) n *= d;
        if (n != values.length) throw new IllegalArgumentException(name + ": shape " + java.util.Arrays.toString(shape) + " does not hold " + values.length + " values");
        if (java.nio.ByteOrder.nativeOrder() != java.nio.ByteOrder.LITTLE_ENDIAN) return ofFloats(name, shape, values);
        return new Tensor(name, GgmlType.F32, shape, MemorySegment.ofArray(values));
    }

    /** A tensor backed by a fresh heap segment holding the floats as F32. */
    public static Tensor ofFloats(String name, long[] shape, float[] values) {
        MemorySegment seg = MemorySegment.ofArray(new byte[values.length * 4]);
        MemorySegment.copy(values, 0, seg, Tensor.F32_LE, 0, values.length);
        return new Tensor(name, GgmlType.F32, shape, seg);
    }
}
