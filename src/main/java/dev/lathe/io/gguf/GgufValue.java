package dev.lathe.io.gguf;

import java.util.Arrays;

/**
 * A typed GGUF metadata value. Java representation of {@code value}: 8-bit ints as Byte, 16-bit as Short,
 * 32-bit as Integer, 64-bit as Long (unsigned types keep their bits), FLOAT32 Float, FLOAT64 Double, BOOL
 * Boolean, STRING String. Arrays ({@code type == ARRAY}) hold a primitive Java array matching
 * {@code elementType} (byte[], short[], int[], long[], float[], double[], boolean[], String[]) or, for
 * arrays of arrays, a GgufValue[].
 */
public record GgufValue(GgufValueType type, GgufValueType elementType, Object value) {

    public static GgufValue of(GgufValueType type, Object value) {
        return new GgufValue(type, null, value);
    }

    public static GgufValue string(String s) {
        return new GgufValue(GgufValueType.STRING, null, s);
    }

    public static GgufValue u32(int v) {
        return new GgufValue(GgufValueType.UINT32, null, v);
    }

    public static GgufValue i32(int v) {
        return new GgufValue(GgufValueType.INT32, null, v);
    }

    public static GgufValue f32(float v) {
        return new GgufValue(GgufValueType.FLOAT32, null, v);
    }

    public static GgufValue bool(boolean v) {
        return new GgufValue(GgufValueType.BOOL, null, v);
    }

    public static GgufValue array(GgufValueType elementType, Object javaArray) {
        return new GgufValue(GgufValueType.ARRAY, elementType, javaArray);
    }

    /** Numeric value as long (unsigned 32-bit and smaller types are zero-extended). */
    public long asLong() {
        return switch (type) {
            case UINT8 -> ((Byte) value) & 0xffL;
            case UINT16 -> ((Short) value) & 0xffffL;
            case UINT32 -> ((Integer) value) & 0xffffffffL;
            case INT8, INT16, INT32, INT64, UINT64 -> ((Number) value).longValue();
            case FLOAT32, FLOAT64 -> (long) ((Number) value).doubleValue();
            case BOOL -> ((Boolean) value) ? 1 : 0;
            default -> throw new IllegalStateException("not a number: " + type);
        };
    }

    public double asDouble() {
        return switch (type) {
            case FLOAT32, FLOAT64 -> ((Number) value).doubleValue();
            default -> asLong();
        };
    }

    public int arrayLength() {
        if (type != GgufValueType.ARRAY) throw new IllegalStateException("not an array: " + type);
        return java.lang.reflect.Array.getLength(value);
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof GgufValue g)) return false;
        return type == g.type && elementType == g.elementType && Arrays.deepEquals(new Object[]{value}, new Object[]{g.value});
    }

    @Override
    public int hashCode() {
        return Arrays.deepHashCode(new Object[]{type, elementType, value});
    }

    @Override
    public String toString() {
        if (type == GgufValueType.ARRAY) {
            return "[" + elementType + " x " + arrayLength() + "]";
        }
        return String.valueOf(value);
    }
}
