package dev.lathe.io.gguf;

import dev.lathe.LatheException;
import dev.lathe.io.AtomicOutput;
import dev.lathe.io.Progress;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;

import java.lang.reflect.Array;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes GGUF v3 files in llama.cpp's layout: header, metadata in insertion order, tensor infos in
 * insertion order with offsets aligned to {@code general.alignment} (default 32), zero padding up to the
 * aligned data start, then each tensor's bytes followed by zero padding to the alignment.
 * Tensor data is produced lazily, one tensor at a time, by a {@link TensorData} callback, so a large model
 * never has to sit in the heap. The file is written to a temp file in the target folder and renamed.
 */
public final class GgufWriter {
    public static final int VERSION = 3;

    /** Produces a tensor's bytes: must write exactly {@link TensorEntry#byteSize()} bytes. */
    @FunctionalInterface
    public interface TensorData {
        void write(AtomicOutput out);
    }

    /** A tensor to write; {@code shape} is row-major (GGUF ne reversed). */
    public record TensorEntry(String name, GgmlType type, long[] shape, TensorData data) {
        public TensorEntry {
            shape = shape.clone();
            if (shape.length < 1 || shape.length > 4) throw new IllegalArgumentException(name + ": " + shape.length + " dimensions");
            if (shape[shape.length - 1] % type.blockSize != 0) {
                throw new IllegalArgumentException(name + ": row length " + shape[shape.length - 1] + " is not a multiple of the " + type + " block size");
            }
        }

        public long byteSize() {
            return type.bytesFor(Tensor.numElements(shape));
        }

        public long[] ne() {
            long[] ne = new long[shape.length];
            for (int i = 0; i < shape.length; i++) ne[i] = shape[shape.length - 1 - i];
            return ne;
        }
    }

    private final LinkedHashMap<String, GgufValue> metadata = new LinkedHashMap<>();
    private final List<TensorEntry> tensors = new ArrayList<>();
    private final Set<String> tensorNames = new HashSet<>();

    public GgufWriter() {}

    /** A writer holding all metadata and tensors of {@code f}, in order; tensors are copied from the mapping when written. */
    public static GgufWriter copyOf(GgufFile f) {
        GgufWriter w = new GgufWriter();
        f.metadata().forEach(w::set);
        for (String n : f.tensorInfos().keySet()) w.addTensor(f.tensor(n));
        return w;
    }

    /** Sets a key: an existing key keeps its position (like gguf_set_kv), a new one is appended. */
    public GgufWriter set(String key, GgufValue value) {
        checkValue(key, value, 0);
        metadata.put(key, value);
        return this;
    }

    public GgufWriter remove(String key) {
        metadata.remove(key);
        return this;
    }

    public GgufWriter setString(String key, String v) {
        return set(key, GgufValue.string(v));
    }

    public GgufWriter setU32(String key, int v) {
        return set(key, GgufValue.u32(v));
    }

    public GgufWriter setI32(String key, int v) {
        return set(key, GgufValue.i32(v));
    }

    public GgufWriter setF32(String key, float v) {
        return set(key, GgufValue.f32(v));
    }

    public GgufWriter setBool(String key, boolean v) {
        return set(key, GgufValue.bool(v));
    }

    public GgufWriter setStrings(String key, String[] v) {
        return set(key, GgufValue.array(GgufValueType.STRING, v));
    }

    public GgufWriter setFloats(String key, float[] v) {
        return set(key, GgufValue.array(GgufValueType.FLOAT32, v));
    }

    public GgufWriter setInts(String key, int[] v) {
        return set(key, GgufValue.array(GgufValueType.INT32, v));
    }

    public Map<String, GgufValue> metadata() {
        return Collections.unmodifiableMap(metadata);
    }

    public List<TensorEntry> tensors() {
        return Collections.unmodifiableList(tensors);
    }

    public GgufWriter addTensor(TensorEntry e) {
        if (!tensorNames.add(e.name())) throw new IllegalArgumentException("duplicate tensor name '" + e.name() + "'");
        tensors.add(e);
        return this;
    }

    public GgufWriter addTensor(String name, GgmlType type, long[] shape, TensorData data) {
        return addTensor(new TensorEntry(name, type, shape, data));
    }

    /** Adds a tensor whose bytes are copied from {@code t.data()} at write time. */
    public GgufWriter addTensor(Tensor t) {
        return addTensor(t.name(), t.type(), t.shape(), out -> out.segment(t.data()));
    }

    /** Reorders the tensors (e.g. llama-quantize's order); the comparator sees the entries. */
    public GgufWriter sortTensors(java.util.Comparator<TensorEntry> order) {
        tensors.sort(order);
        return this;
    }

    public int alignment() {
        GgufValue a = metadata.get("general.alignment");
        if (a == null) return GgufFile.DEFAULT_ALIGNMENT;
        if (a.type() != GgufValueType.UINT32) throw new IllegalArgumentException("general.alignment must be UINT32, is " + a.type());
        long v = a.asLong();
        if (v <= 0 || v > 1 << 20 || (v & (v - 1)) != 0) throw new IllegalArgumentException("general.alignment " + v + " is not a power of two");
        return (int) v;
    }

    public void write(Path target) {
        write(target, Progress.NONE);
    }

    /** Writes the file atomically; progress is reported in bytes of tensor data. */
    public void write(Path target, Progress progress) {
        int alignment = alignment();
        long total = 0;
        for (TensorEntry t : tensors) total += t.byteSize();
        final long totalBytes = total;
        AtomicOutput.write(target, out -> {
            out.i32(GgufFile.MAGIC);
            out.i32(VERSION);
            out.i64(tensors.size());
            out.i64(metadata.size());
            for (Map.Entry<String, GgufValue> e : metadata.entrySet()) {
                string(out, e.getKey());
                out.i32(e.getValue().type().id);
                value(out, e.getValue());
            }
            long offset = 0;
            for (TensorEntry t : tensors) {
                string(out, t.name());
                long[] ne = t.ne();
                out.i32(ne.length);
                for (long d : ne) out.i64(d);
                out.i32(t.type().id);
                out.i64(offset);
                offset += pad(t.byteSize(), alignment);
            }
            out.padTo(alignment);
            long done = 0;
            progress.update("write", 0, totalBytes);
            for (TensorEntry t : tensors) {
                long start = out.position();
                t.data().write(out);
                long wrote = out.position() - start;
                if (wrote != t.byteSize()) {
                    throw new LatheException(target, "tensor '" + t.name() + "' produced " + wrote + " bytes, expected " + t.byteSize());
                }
                out.padTo(alignment);
                done += t.byteSize();
                progress.update("write", done, totalBytes);
            }
        });
    }

    static long pad(long x, long a) {
        return (x + a - 1) / a * a;
    }

    private static void string(AtomicOutput out, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        out.i64(b.length);
        out.bytes(b);
    }

    private static void value(AtomicOutput out, GgufValue v) {
        if (v.type() == GgufValueType.ARRAY) {
            out.i32(v.elementType().id);
            Object a = v.value();
            int n = Array.getLength(a);
            out.i64(n);
            switch (v.elementType()) {
                case UINT8, INT8 -> out.bytes((byte[]) a);
                case BOOL -> { for (boolean x : (boolean[]) a) out.u8(x ? 1 : 0); }
                case UINT16, INT16 -> { for (short x : (short[]) a) out.i16(x); }
                case UINT32, INT32 -> { for (int x : (int[]) a) out.i32(x); }
                case FLOAT32 -> { for (float x : (float[]) a) out.f32(x); }
                case UINT64, INT64 -> { for (long x : (long[]) a) out.i64(x); }
                case FLOAT64 -> { for (double x : (double[]) a) out.f64(x); }
                case STRING -> { for (String x : (String[]) a) string(out, x); }
                case ARRAY -> { for (GgufValue x : (GgufValue[]) a) value(out, x); }
            }
            return;
        }
        Object o = v.value();
        switch (v.type()) {
            case UINT8, INT8 -> out.u8((Byte) o);
            case BOOL -> out.u8(((Boolean) o) ? 1 : 0);
            case UINT16, INT16 -> out.i16((Short) o);
            case UINT32, INT32 -> out.i32((Integer) o);
            case FLOAT32 -> out.f32((Float) o);
            case UINT64, INT64 -> out.i64((Long) o);
            case FLOAT64 -> out.f64((Double) o);
            case STRING -> string(out, (String) o);
            case ARRAY -> throw new AssertionError();
        }
    }

    /** Rejects values whose Java representation does not match their type (see {@link GgufValue}). */
    private static void checkValue(String key, GgufValue v, int depth) {
        if (v == null || v.type() == null || v.value() == null) throw new IllegalArgumentException("metadata '" + key + "': null value");
        Object o = v.value();
        boolean ok = switch (v.type()) {
            case UINT8, INT8 -> o instanceof Byte;
            case BOOL -> o instanceof Boolean;
            case UINT16, INT16 -> o instanceof Short;
            case UINT32, INT32 -> o instanceof Integer;
            case FLOAT32 -> o instanceof Float;
            case UINT64, INT64 -> o instanceof Long;
            case FLOAT64 -> o instanceof Double;
            case STRING -> o instanceof String;
            case ARRAY -> {
                if (v.elementType() == null || depth > 2) yield false;
                yield switch (v.elementType()) {
                    case UINT8, INT8 -> o instanceof byte[];
                    case BOOL -> o instanceof boolean[];
                    case UINT16, INT16 -> o instanceof short[];
                    case UINT32, INT32 -> o instanceof int[];
                    case FLOAT32 -> o instanceof float[];
                    case UINT64, INT64 -> o instanceof long[];
                    case FLOAT64 -> o instanceof double[];
                    case STRING -> o instanceof String[] s && Arrays.stream(s).allMatch(x -> x != null);
                    case ARRAY -> {
                        if (!(o instanceof GgufValue[] arr)) yield false;
                        for (GgufValue x : arr) {
                            if (x == null || x.type() != GgufValueType.ARRAY) yield false;
                            checkValue(key, x, depth + 1);
                        }
                        yield true;
                    }
                };
            }
        };
        if (!ok) throw new IllegalArgumentException("metadata '" + key + "': value " + o.getClass().getSimpleName() + " does not match type " + v.type()
                + (v.elementType() != null ? "/" + v.elementType() : ""));
    }
}
