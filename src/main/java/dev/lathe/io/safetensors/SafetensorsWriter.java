package dev.lathe.io.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lathe.LatheException;
import dev.lathe.io.AtomicOutput;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes a safetensors file: u64 little-endian header length, compact JSON header ({@code __metadata__}
 * first, then one entry per tensor), padded with spaces to a multiple of 8, then the tensors' bytes laid out
 * in sorted-name order (like the fixtures' writer and the reference safetensors library's name order).
 * Tensor bytes are produced lazily; the file is written to a temp file and renamed.
 */
public final class SafetensorsWriter {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Produces a tensor's bytes: exactly {@link Entry#byteSize()} of them, little-endian. */
    @FunctionalInterface
    public interface TensorData {
        void write(AtomicOutput out);
    }

    public record Entry(String name, String dtype, long[] shape, TensorData data) {
        public Entry {
            shape = shape.clone();
            if (SafetensorsFile.dtypeSize(dtype) < 0) throw new IllegalArgumentException(name + ": unknown safetensors dtype " + dtype);
            if (name.equals("__metadata__")) throw new IllegalArgumentException("'__metadata__' is not a tensor name");
        }

        public long byteSize() {
            return Tensor.numElements(shape) * SafetensorsFile.dtypeSize(dtype);
        }
    }

    private final Map<String, String> metadata = new LinkedHashMap<>();
    private final List<Entry> entries = new ArrayList<>();
    private final Set<String> names = new HashSet<>();

    /** The safetensors dtype for a GGML type (F32, F16, BF16, I8, I16, I32, I64, F64); quantized types have none. */
    public static String dtypeOf(GgmlType t) {
        return switch (t) {
            case F32 -> "F32";
            case F16 -> "F16";
            case BF16 -> "BF16";
            case I8 -> "I8";
            case I16 -> "I16";
            case I32 -> "I32";
            case I64 -> "I64";
            case F64 -> "F64";
            default -> throw new IllegalArgumentException(t + " has no safetensors dtype; dequantize first");
        };
    }

    /** A writer holding everything in {@code f} (metadata and tensors, dtypes kept). */
    public static SafetensorsWriter copyOf(SafetensorsFile f) {
        SafetensorsWriter w = new SafetensorsWriter();
        f.metadata().forEach(w::metadata);
        for (SafetensorsFile.Entry e : f.entries().values()) {
            w.add(new Entry(e.name(), e.dtype(), e.shape(), out -> out.segment(e.data())));
        }
        return w;
    }

    public SafetensorsWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    public SafetensorsWriter add(Entry e) {
        if (!names.add(e.name())) throw new IllegalArgumentException("duplicate tensor name '" + e.name() + "'");
        entries.add(e);
        return this;
    }

    public SafetensorsWriter add(String name, String dtype, long[] shape, TensorData data) {
        return add(new Entry(name, dtype, shape, data));
    }

    /** Adds a tensor under {@code name}; its bytes are copied at write time. */
    public SafetensorsWriter add(String name, Tensor t) {
        return add(name, dtypeOf(t.type()), t.shape(), out -> out.segment(t.data()));
    }

    public List<Entry> entries() {
        return Collections.unmodifiableList(entries);
    }

    /** Sum of the tensors' bytes. */
    public long dataBytes() {
        long n = 0;
        for (Entry e : entries) n += e.byteSize();
        return n;
    }

    /** The padded header bytes (without the length prefix) for the current entries. */
    public byte[] header() {
        List<Entry> sorted = sorted();
        ObjectNode root = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode m = root.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        long off = 0;
        for (Entry e : sorted) {
            ObjectNode o = root.putObject(e.name());
            o.put("dtype", e.dtype());
            ArrayNode s = o.putArray("shape");
            for (long d : e.shape()) s.add(d);
            ArrayNode r = o.putArray("data_offsets");
            r.add(off);
            off += e.byteSize();
            r.add(off);
        }
        byte[] json;
        try {
            json = JSON.writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException ex) {
            throw new IllegalStateException(ex);
        }
        int padded = (json.length + 7) / 8 * 8;
        byte[] out = new byte[padded];
        System.arraycopy(json, 0, out, 0, json.length);
        for (int i = json.length; i < padded; i++) out[i] = ' ';
        return out;
    }

    private List<Entry> sorted() {
        List<Entry> s = new ArrayList<>(entries);
        s.sort(Comparator.comparing(Entry::name));
        return s;
    }

    public void write(Path target) {
        byte[] header = header();
        AtomicOutput.write(target, out -> {
            out.i64(header.length);
            out.bytes(header);
            for (Entry e : sorted()) {
                long start = out.position();
                e.data().write(out);
                long wrote = out.position() - start;
                if (wrote != e.byteSize()) throw new LatheException(target, "tensor '" + e.name() + "' produced " + wrote + " bytes, expected " + e.byteSize());
            }
        });
    }
}
