package dev.lathe.io.gguf;

import dev.lathe.LatheException;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A GGUF file (v2 or v3), memory-mapped. Metadata keeps its order and types; tensors are views into the
 * mapping. Every structural problem (wrong magic, truncated file, unknown type, data past the end, absurd
 * sizes) raises a {@link LatheException} naming the file.
 */
public final class GgufFile implements AutoCloseable {
    public static final int MAGIC = 0x46554747; // "GGUF" little-endian
    public static final int DEFAULT_ALIGNMENT = 32;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int MAX_DIMS = 4;

    /** Where a tensor lives in the file: GGUF's tensor info. */
    public record TensorInfo(String name, GgmlType type, long[] ne, long offset) {
        /** Row-major shape (ne reversed). */
        public long[] shape() {
            long[] s = new long[ne.length];
            for (int i = 0; i < ne.length; i++) s[i] = ne[ne.length - 1 - i];
            return s;
        }
    }

    private final Path path;
    private final Arena arena;
    private final MemorySegment file;
    private final int version;
    private final Map<String, GgufValue> metadata;
    private final Map<String, TensorInfo> tensorInfos;
    private final long dataStart;
    private final int alignment;

    private GgufFile(Path path, Arena arena, MemorySegment file, int version, Map<String, GgufValue> metadata,
                     Map<String, TensorInfo> tensorInfos, long dataStart, int alignment) {
        this.path = path;
        this.arena = arena;
        this.file = file;
        this.version = version;
        this.metadata = metadata;
        this.tensorInfos = tensorInfos;
        this.dataStart = dataStart;
        this.alignment = alignment;
    }

    /** True if the file starts with the GGUF magic. */
    public static boolean looksLikeGguf(Path path) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
            if (ch.read(b) != 4) return false;
            return b.getInt(0) == MAGIC;
        } catch (IOException e) {
            return false;
        }
    }

    public static GgufFile open(Path path) {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment seg;
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                seg = ch.size() == 0 ? MemorySegment.NULL.reinterpret(0) : ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            } catch (IOException e) {
                throw new LatheException(path, "cannot read: " + e.getMessage(), e);
            }
            GgufFile g = parse(path, arena, seg);
            return g;
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static GgufFile parse(Path path, Arena arena, MemorySegment seg) {
        Reader r = new Reader(path, seg);
        if (seg.byteSize() < 4) throw new LatheException(path, "not a GGUF file: only " + seg.byteSize() + " bytes");
        int magic = r.i32();
        if (magic != MAGIC) throw new LatheException(path, String.format("not a GGUF file: wrong magic 0x%08x", magic));
        int version = r.i32();
        if (version != 2 && version != 3) throw new LatheException(path, "unsupported GGUF version " + version + " (2 and 3 are supported)");
        long nTensors = r.i64();
        long nKv = r.i64();
        // every tensor info needs at least 8+4+8+4+8 bytes, every kv at least 8+4+1
        if (nTensors < 0 || nTensors > seg.byteSize() / 32) throw new LatheException(path, "absurd tensor count " + Long.toUnsignedString(nTensors));
        if (nKv < 0 || nKv > seg.byteSize() / 13) throw new LatheException(path, "absurd metadata count " + Long.toUnsignedString(nKv));
        Map<String, GgufValue> md = new LinkedHashMap<>();
        for (long i = 0; i < nKv; i++) {
            String key = r.string();
            int typeId = r.i32();
            GgufValueType t = GgufValueType.byId(typeId);
            if (t == null) throw new LatheException(path, "metadata key '" + key + "' has unknown value type " + typeId);
            if (md.containsKey(key)) throw new LatheException(path, "duplicate metadata key '" + key + "'");
            md.put(key, r.value(t, key, 0));
        }
        int alignment = DEFAULT_ALIGNMENT;
        GgufValue al = md.get("general.alignment");
        if (al != null) {
            long a = al.type() == GgufValueType.ARRAY || al.type() == GgufValueType.STRING ? -1 : al.asLong();
            if (a <= 0 || a > 1 << 20 || (a & (a - 1)) != 0) throw new LatheException(path, "general.alignment " + al + " is not a power of two");
            alignment = (int) a;
        }
        Map<String, TensorInfo> infos = new LinkedHashMap<>();
        for (long i = 0; i < nTensors; i++) {
            String name = r.string();
            int nd = r.i32();
            if (nd < 1 || nd > MAX_DIMS) throw new LatheException(path, "tensor '" + name + "' has " + nd + " dimensions (1.." + MAX_DIMS + " allowed)");
            long[] ne = new long[nd];
            for (int d = 0; d < nd; d++) {
                ne[d] = r.i64();
                if (ne[d] < 0 || ne[d] > (1L << 40)) throw new LatheException(path, "tensor '" + name + "' has absurd dimension " + Long.toUnsignedString(ne[d]));
            }
            int typeId = r.i32();
            GgmlType type = GgmlType.byId(typeId);
            if (type == null) throw new LatheException(path, "tensor '" + name + "' has unknown type " + typeId);
            long off = r.i64();
            if (ne[0] % type.blockSize != 0) throw new LatheException(path, "tensor '" + name + "' row length " + ne[0] + " is not a multiple of the " + type + " block size " + type.blockSize);
            if (off < 0 || off % alignment != 0) throw new LatheException(path, "tensor '" + name + "' has misaligned data offset " + off);
            if (infos.put(name, new TensorInfo(name, type, ne, off)) != null) throw new LatheException(path, "duplicate tensor name '" + name + "'");
        }
        long dataStart = align(r.pos, alignment);
        for (TensorInfo ti : infos.values()) {
            long n, bytes, end;
            try {
                n = Tensor.numElements(ti.ne());
                bytes = Math.multiplyExact(n / ti.type().blockSize, (long) ti.type().typeSize);
                end = Math.addExact(Math.addExact(dataStart, ti.offset()), bytes);
            } catch (ArithmeticException e) {
                throw new LatheException(path, "tensor '" + ti.name() + "' is absurdly large (ne " + java.util.Arrays.toString(ti.ne()) + ")");
            }
            if (end > seg.byteSize()) {
                throw new LatheException(path, "tensor '" + ti.name() + "' data (" + bytes + " bytes at " + (dataStart + ti.offset()) + ") runs past the end of the file (" + seg.byteSize() + " bytes); the file is truncated or corrupt");
            }
        }
        return new GgufFile(path, arena, seg, version, Collections.unmodifiableMap(md), Collections.unmodifiableMap(infos), dataStart, alignment);
    }

    static long align(long x, int a) {
        return (x + a - 1) / a * a;
    }

    public Path path() {
        return path;
    }

    public int version() {
        return version;
    }

    public int alignment() {
        return alignment;
    }

    public long dataStart() {
        return dataStart;
    }

    public Map<String, GgufValue> metadata() {
        return metadata;
    }

    public Map<String, TensorInfo> tensorInfos() {
        return tensorInfos;
    }

    public boolean hasTensor(String name) {
        return tensorInfos.containsKey(name);
    }

    /** The tensor, a view into the mapped file. */
    public Tensor tensor(String name) {
        TensorInfo ti = tensorInfos.get(name);
        if (ti == null) throw new LatheException(path, "missing tensor '" + name + "'");
        long bytes = ti.type().bytesFor(Tensor.numElements(ti.ne()));
        return new Tensor(name, ti.type(), ti.shape(), file.asSlice(dataStart + ti.offset(), bytes));
    }

    public List<Tensor> tensors() {
        List<Tensor> out = new ArrayList<>();
        for (String n : tensorInfos.keySet()) out.add(tensor(n));
        return out;
    }

    public GgufValue get(String key) {
        return metadata.get(key);
    }

    public String getString(String key, String def) {
        GgufValue v = metadata.get(key);
        if (v == null) return def;
        if (v.type() != GgufValueType.STRING) throw new LatheException(path, "metadata '" + key + "' should be a string, is " + v.type());
        return (String) v.value();
    }

    public long getLong(String key, long def) {
        GgufValue v = metadata.get(key);
        if (v == null) return def;
        if (v.type() == GgufValueType.STRING || v.type() == GgufValueType.ARRAY) throw new LatheException(path, "metadata '" + key + "' should be a number, is " + v.type());
        return v.asLong();
    }

    public long requireLong(String key) {
        if (!metadata.containsKey(key)) throw new LatheException(path, "missing metadata '" + key + "'");
        return getLong(key, 0);
    }

    public double getDouble(String key, double def) {
        GgufValue v = metadata.get(key);
        if (v == null) return def;
        if (v.type() == GgufValueType.STRING || v.type() == GgufValueType.ARRAY) throw new LatheException(path, "metadata '" + key + "' should be a number, is " + v.type());
        return v.asDouble();
    }

    public boolean getBool(String key, boolean def) {
        GgufValue v = metadata.get(key);
        if (v == null) return def;
        if (v.type() != GgufValueType.BOOL) throw new LatheException(path, "metadata '" + key + "' should be a bool, is " + v.type());
        return (Boolean) v.value();
    }

    /** Array metadata as the given Java array class (e.g. String[].class, float[].class, int[].class), or null. */
    public <T> T getArray(String key, Class<T> arrayClass) {
        GgufValue v = metadata.get(key);
        if (v == null) return null;
        if (v.type() != GgufValueType.ARRAY || !arrayClass.isInstance(v.value())) {
            throw new LatheException(path, "metadata '" + key + "' should be an array " + arrayClass.getSimpleName() + ", is " + v);
        }
        return arrayClass.cast(v.value());
    }

    @Override
    public void close() {
        arena.close();
    }

    /** Bounds-checked little-endian cursor over the mapping. */
    private static final class Reader {
        final Path path;
        final MemorySegment seg;
        long pos;

        Reader(Path path, MemorySegment seg) {
            this.path = path;
            this.seg = seg;
        }

        void need(long n, String what) {
            if (n < 0 || pos + n > seg.byteSize() || pos + n < 0) {
                throw new LatheException(path, "truncated file: " + what + " at byte " + pos + " needs " + n + " bytes, file has " + seg.byteSize());
            }
        }

        int i32() {
            need(4, "int32");
            int v = seg.get(I32, pos);
            pos += 4;
            return v;
        }

        long i64() {
            need(8, "int64");
            long v = seg.get(I64, pos);
            pos += 8;
            return v;
        }

        String string() {
            long len = i64();
            if (len < 0 || len > (1 << 24)) throw new LatheException(path, "absurd string length " + Long.toUnsignedString(len) + " at byte " + (pos - 8));
            need(len, "string");
            byte[] b = seg.asSlice(pos, len).toArray(ValueLayout.JAVA_BYTE);
            pos += len;
            try {
                return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(java.nio.ByteBuffer.wrap(b)).toString();
            } catch (CharacterCodingException e) {
                // llama.cpp vocabularies may hold partial UTF-8 pieces; keep them losslessly as Latin-1-free replacement
                return new String(b, StandardCharsets.UTF_8);
            }
        }

        GgufValue value(GgufValueType t, String key, int depth) {
            switch (t) {
                case UINT8, INT8 -> { need(1, key); byte v = seg.get(ValueLayout.JAVA_BYTE, pos); pos += 1; return GgufValue.of(t, v); }
                case BOOL -> {
                    need(1, key);
                    byte v = seg.get(ValueLayout.JAVA_BYTE, pos);
                    pos += 1;
                    if (v != 0 && v != 1) throw new LatheException(path, "metadata '" + key + "' has invalid bool " + v);
                    return GgufValue.of(t, v == 1);
                }
                case UINT16, INT16 -> { need(2, key); short v = seg.get(I16, pos); pos += 2; return GgufValue.of(t, v); }
                case UINT32, INT32 -> { return GgufValue.of(t, i32()); }
                case FLOAT32 -> { need(4, key); float v = seg.get(F32, pos); pos += 4; return GgufValue.of(t, v); }
                case UINT64, INT64 -> { return GgufValue.of(t, i64()); }
                case FLOAT64 -> { need(8, key); double v = seg.get(F64, pos); pos += 8; return GgufValue.of(t, v); }
                case STRING -> { return GgufValue.string(string()); }
                case ARRAY -> {
                    if (depth > 2) throw new LatheException(path, "metadata '" + key + "' nests arrays too deeply");
                    int et = i32();
                    GgufValueType e = GgufValueType.byId(et);
                    if (e == null) throw new LatheException(path, "metadata '" + key + "' array has unknown element type " + et);
                    long n = i64();
                    long minBytes = e.scalarSize() > 0 ? e.scalarSize() : 8;
                    if (n < 0 || n > Integer.MAX_VALUE - 8 || n * minBytes > seg.byteSize() - pos) {
                        throw new LatheException(path, "metadata '" + key + "' has absurd array length " + Long.toUnsignedString(n));
                    }
                    int len = (int) n;
                    Object arr = switch (e) {
                        case UINT8, INT8 -> { need(len, key); byte[] a = seg.asSlice(pos, len).toArray(ValueLayout.JAVA_BYTE); pos += len; yield a; }
                        case BOOL -> {
                            need(len, key);
                            boolean[] a = new boolean[len];
                            for (int i = 0; i < len; i++) a[i] = seg.get(ValueLayout.JAVA_BYTE, pos + i) != 0;
                            pos += len;
                            yield a;
                        }
                        case UINT16, INT16 -> { need(2L * len, key); short[] a = new short[len]; for (int i = 0; i < len; i++) a[i] = seg.get(I16, pos + 2L * i); pos += 2L * len; yield a; }
                        case UINT32, INT32 -> { need(4L * len, key); int[] a = new int[len]; for (int i = 0; i < len; i++) a[i] = seg.get(I32, pos + 4L * i); pos += 4L * len; yield a; }
                        case FLOAT32 -> { need(4L * len, key); float[] a = new float[len]; for (int i = 0; i < len; i++) a[i] = seg.get(F32, pos + 4L * i); pos += 4L * len; yield a; }
                        case UINT64, INT64 -> { need(8L * len, key); long[] a = new long[len]; for (int i = 0; i < len; i++) a[i] = seg.get(I64, pos + 8L * i); pos += 8L * len; yield a; }
                        case FLOAT64 -> { need(8L * len, key); double[] a = new double[len]; for (int i = 0; i < len; i++) a[i] = seg.get(F64, pos + 8L * i); pos += 8L * len; yield a; }
                        case STRING -> { String[] a = new String[len]; for (int i = 0; i < len; i++) a[i] = string(); yield a; }
                        case ARRAY -> { GgufValue[] a = new GgufValue[len]; for (int i = 0; i < len; i++) a[i] = value(GgufValueType.ARRAY, key, depth + 1); yield a; }
                    };
                    return GgufValue.array(e, arr);
                }
            }
            throw new AssertionError(t);
        }
    }
}
