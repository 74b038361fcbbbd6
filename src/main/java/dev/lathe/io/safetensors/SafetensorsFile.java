package dev.lathe.io.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lathe.LatheException;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import dev.lathe.tensor.TensorOps;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A memory-mapped safetensors file: u64 little-endian header length, JSON header, then the data buffer.
 * Validates the header fully (dtypes, shapes, offsets inside the buffer, no overlap) and raises
 * {@link LatheException} naming the file for anything wrong.
 */
public final class SafetensorsFile implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long MAX_HEADER = 100L << 20;

    /** One tensor's header entry and bytes. {@code dtype} is the safetensors dtype name (F32, BF16, U8, ...). */
    public record Entry(String name, String dtype, long[] shape, MemorySegment data) {}

    private final Path path;
    private final Arena arena;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, Arena arena, Map<String, Entry> entries, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.entries = entries;
        this.metadata = metadata;
    }

    /** Bytes per element of a safetensors dtype, or -1 if unknown. */
    public static int dtypeSize(String dtype) {
        return switch (dtype) {
            case "F64", "I64", "U64" -> 8;
            case "F32", "I32", "U32" -> 4;
            case "F16", "BF16", "I16", "U16" -> 2;
            case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2" -> 1;
            default -> -1;
        };
    }

    /** The GGML type used to view a dtype as a {@link Tensor} (U8/BOOL viewed as I8 bits), or null. */
    public static GgmlType ggmlType(String dtype) {
        return switch (dtype) {
            case "F64" -> GgmlType.F64;
            case "F32" -> GgmlType.F32;
            case "F16" -> GgmlType.F16;
            case "BF16" -> GgmlType.BF16;
            case "I64" -> GgmlType.I64;
            case "I32" -> GgmlType.I32;
            case "I16" -> GgmlType.I16;
            case "I8", "U8", "BOOL" -> GgmlType.I8;
            default -> null;
        };
    }

    /** True if the file plausibly is safetensors: a sane header length followed by '{'. */
    public static boolean looksLikeSafetensors(Path path) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(9).order(ByteOrder.LITTLE_ENDIAN);
            if (ch.read(b) != 9) return false;
            long n = b.getLong(0);
            return n > 1 && n <= MAX_HEADER && n + 8 <= ch.size() && b.get(8) == '{';
        } catch (IOException e) {
            return false;
        }
    }

    public static SafetensorsFile open(Path path) {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment seg;
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                if (ch.size() < 8) throw new LatheException(path, "not a safetensors file: only " + ch.size() + " bytes");
                seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            } catch (IOException e) {
                throw new LatheException(path, "cannot read: " + e.getMessage(), e);
            }
            long n = seg.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            if (n <= 0 || n > MAX_HEADER) throw new LatheException(path, "not a safetensors file: absurd header length " + Long.toUnsignedString(n));
            if (8 + n > seg.byteSize()) throw new LatheException(path, "truncated file: header of " + n + " bytes, file has " + seg.byteSize());
            String header = new String(seg.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            JsonNode root;
            try {
                root = JSON.readTree(header);
            } catch (JsonProcessingException e) {
                throw new LatheException(path, "invalid JSON header: " + e.getOriginalMessage());
            }
            if (root == null || !root.isObject()) throw new LatheException(path, "safetensors header is not a JSON object");
            MemorySegment buffer = seg.asSlice(8 + n);
            Map<String, Entry> entries = new LinkedHashMap<>();
            Map<String, String> meta = new LinkedHashMap<>();
            List<long[]> ranges = new ArrayList<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String name = e.getKey();
                JsonNode v = e.getValue();
                if (name.equals("__metadata__")) {
                    if (!v.isObject()) throw new LatheException(path, "__metadata__ is not an object");
                    v.fields().forEachRemaining(m -> meta.put(m.getKey(), m.getValue().isTextual() ? m.getValue().asText() : m.getValue().toString()));
                    continue;
                }
                if (!v.isObject() || !v.path("dtype").isTextual() || !v.path("shape").isArray() || !v.path("data_offsets").isArray() || v.path("data_offsets").size() != 2) {
                    throw new LatheException(path, "tensor '" + name + "' has a malformed header entry");
                }
                String dtype = v.get("dtype").asText();
                int es = dtypeSize(dtype);
                if (es < 0) throw new LatheException(path, "tensor '" + name + "' has unknown dtype " + dtype);
                JsonNode sh = v.get("shape");
                if (sh.size() > 8) throw new LatheException(path, "tensor '" + name + "' has " + sh.size() + " dimensions");
                long[] shape = new long[sh.size()];
                long count = 1;
                for (int i = 0; i < shape.length; i++) {
                    if (!sh.get(i).canConvertToLong() || sh.get(i).asLong() < 0) throw new LatheException(path, "tensor '" + name + "' has invalid shape " + sh);
                    shape[i] = sh.get(i).asLong();
                    try {
                        count = Math.multiplyExact(count, shape[i]);
                    } catch (ArithmeticException ex) {
                        throw new LatheException(path, "tensor '" + name + "' has absurd shape " + sh);
                    }
                }
                JsonNode off = v.get("data_offsets");
                if (!off.get(0).canConvertToLong() || !off.get(1).canConvertToLong()) throw new LatheException(path, "tensor '" + name + "' has invalid data_offsets " + off);
                long b = off.get(0).asLong(), end = off.get(1).asLong();
                if (b < 0 || end < b || end > buffer.byteSize()) {
                    throw new LatheException(path, "tensor '" + name + "' data [" + b + ", " + end + ") lies outside the data buffer of " + buffer.byteSize() + " bytes; the file is truncated or corrupt");
                }
                if (count > Long.MAX_VALUE / es || end - b != count * es) {
                    throw new LatheException(path, "tensor '" + name + "' shape " + sh + " of " + dtype + " needs " + (count * es) + " bytes but data_offsets give " + (end - b));
                }
                ranges.add(new long[]{b, end});
                entries.put(name, new Entry(name, dtype, shape, buffer.asSlice(b, end - b)));
            }
            ranges.sort((x, y) -> Long.compare(x[0], y[0]));
            for (int i = 1; i < ranges.size(); i++) {
                if (ranges.get(i)[0] < ranges.get(i - 1)[1]) throw new LatheException(path, "tensor data ranges overlap");
            }
            return new SafetensorsFile(path, arena, Collections.unmodifiableMap(entries), Collections.unmodifiableMap(meta));
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    public Path path() {
        return path;
    }

    public Map<String, Entry> entries() {
        return entries;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    public boolean has(String name) {
        return entries.containsKey(name);
    }

    public Entry entry(String name) {
        Entry e = entries.get(name);
        if (e == null) throw new LatheException(path, "missing tensor '" + name + "'");
        return e;
    }

    /** The tensor as a {@link Tensor} view (no copy). */
    public Tensor tensor(String name) {
        Entry e = entry(name);
        GgmlType t = ggmlType(e.dtype());
        if (t == null) throw new LatheException(path, "tensor '" + name + "' has dtype " + e.dtype() + " which Lathe cannot use as a tensor");
        return new Tensor(name, t, e.shape(), e.data());
    }

    /** Copies the tensor into a float array (F32, F16, BF16, F64, integer dtypes widened). */
    public float[] floats(String name) {
        return TensorOps.toFloats(tensor(name));
    }

    @Override
    public void close() {
        arena.close();
    }
}
