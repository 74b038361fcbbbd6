package dev.lathe.tokenizer;

import dev.lathe.io.gguf.GgufValue;
import dev.lathe.io.gguf.GgufValueType;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/** Writes a GGUF v3 file with metadata only (no tensors), for tokenizer tests. */
final class MiniGguf {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    static void write(Path path, Map<String, GgufValue> md) throws IOException {
        MiniGguf w = new MiniGguf();
        w.i32(0x46554747);
        w.i32(3);
        w.i64(0);
        w.i64(md.size());
        for (Map.Entry<String, GgufValue> e : md.entrySet()) {
            w.str(e.getKey());
            w.i32(e.getValue().type().id);
            w.value(e.getValue().type(), e.getValue().elementType(), e.getValue().value());
        }
        Files.write(path, w.out.toByteArray());
    }

    private void value(GgufValueType t, GgufValueType et, Object v) {
        switch (t) {
            case UINT8, INT8 -> out.write((Byte) v);
            case UINT16, INT16 -> bytes(ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN).putShort((Short) v).array());
            case UINT32, INT32 -> i32((Integer) v);
            case FLOAT32 -> i32(Float.floatToRawIntBits((Float) v));
            case BOOL -> out.write((Boolean) v ? 1 : 0);
            case STRING -> str((String) v);
            case UINT64, INT64 -> i64((Long) v);
            case FLOAT64 -> i64(Double.doubleToRawLongBits((Double) v));
            case ARRAY -> {
                i32(et.id);
                int n = java.lang.reflect.Array.getLength(v);
                i64(n);
                for (int i = 0; i < n; i++) value(et, null, java.lang.reflect.Array.get(v, i));
            }
        }
    }

    private void i32(int v) {
        bytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array());
    }

    private void i64(long v) {
        bytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array());
    }

    private void str(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        i64(b.length);
        bytes(b);
    }

    private void bytes(byte[] b) {
        out.write(b, 0, b.length);
    }
}
