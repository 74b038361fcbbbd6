package dev.lathe.compress;

import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;

import java.lang.foreign.MemorySegment;

/** A quantized weight matrix {@code [rows, cols]} as it will be stored. */
public sealed interface QuantizedWeight {
    String name();

    int rows();

    int cols();

    /** The weights the stored form decodes to. */
    float[] dequantize();

    /** Bytes of storage. */
    long bytes();

    /**
     * A float vector a modifier changed without quantizing it (AWQ folds its scales into the RMSNorm weights),
     * stored as one F32 row: writers put it in place of the source's tensor.
     */
    static Gguf f32(String name, float[] v) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * v.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (float f : v) b.putFloat(f);
        return new Gguf(name, GgmlType.F32, 1, v.length, b.array());
    }

    /** True for a {@link #f32} vector (a changed float tensor, not a quantized weight). */
    default boolean isFloatVector() {
        return this instanceof Gguf g && g.type() == GgmlType.F32 && g.rows() == 1;
    }

    /** GGUF block-type data: {@code rows} rows of {@code type.bytesFor(cols)} bytes. */
    record Gguf(String name, GgmlType type, int rows, int cols, byte[] data) implements QuantizedWeight {
        @Override
        public float[] dequantize() {
            float[] out = new float[rows * cols];
            long rb = type.bytesFor(cols);
            MemorySegment s = MemorySegment.ofArray(data);
            for (int r = 0; r < rows; r++) BlockCodecs.get(type).dequantize(s, r * rb, out, r * cols, cols);
            return out;
        }

        @Override
        public long bytes() {
            return data.length;
        }
    }

    /**
     * Integers: {@code q[r*cols + c]} in [qmin, qmax]; {@code scales[r*groups + g]}, {@code zeros} likewise
     * (all 0 when symmetric); value = (q - zero) * scale.
     */
    record Int(String name, WeightFormat.Int format, int rows, int cols, byte[] q, float[] scales, byte[] zeros) implements QuantizedWeight {
        public int groups() {
            return cols / format.groupSize(cols);
        }

        @Override
        public float[] dequantize() {
            float[] out = new float[rows * cols];
            int g = format.groupSize(cols), ng = groups();
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    int gi = r * ng + c / g;
                    out[r * cols + c] = (q[r * cols + c] - zeros[gi]) * scales[gi];
                }
            }
            return out;
        }

        @Override
        public long bytes() {
            return (long) rows * cols * format.bits() / 8 + (long) scales.length * (format.symmetric() ? 2 : 3);
        }
    }
}
