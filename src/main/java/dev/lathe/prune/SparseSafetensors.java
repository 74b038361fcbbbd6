package dev.lathe.prune;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lathe.LatheException;
import dev.lathe.io.Converter;
import dev.lathe.io.Progress;
import dev.lathe.io.hf.HfFolderWriter;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.io.safetensors.SafetensorsWriter;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Writes pruned models as Hugging Face folders: dense (zeros kept) or in the compressed-tensors sparse layouts.
 * <ul>
 *   <li>"sparse-bitmask": per pruned module {@code P} (HF name without ".weight"): {@code P.compressed} (1-D, the
 *   non-zero values in row-major order, model dtype), {@code P.bitmask} (U8 [rows, ceil(cols/8)], numpy
 *   packbits little bit order: bit j of byte b is column 8b+j), {@code P.shape} (I32 [2]) and
 *   {@code P.row_offsets} (I64 [rows], index of each row's first value).</li>
 *   <li>"sparse-24-bitmask" (2:4 only): {@code P.compressed} [rows, cols/2] (each row's two kept values per group
 *   of four; a group with fewer non-zeros keeps its first zeros), {@code P.bitmask} and {@code P.shape}.</li>
 * </ul>
 * config.json gets a {@code quantization_config} {quant_method: compressed-tensors, format, sparsity_config
 * {format, global_sparsity, sparsity_structure, targets, ignore}}. Everything is written into a temporary
 * folder beside the output and renamed into place at the end, so a failure leaves nothing half-written.
 */
public final class SparseSafetensors {
    private SparseSafetensors() {}

    public static final String BITMASK = "sparse-bitmask";
    public static final String SPARSE24 = "sparse-24-bitmask";

    /** Output layout of a pruned model. */
    public enum Format { DENSE, BITMASK, NM }

    /** Throws unless {@code out} does not exist or is an empty folder. */
    public static void checkOutput(Path out) {
        if (!Files.exists(out)) return;
        if (!Files.isDirectory(out)) throw new LatheException(out, "output exists and is not a folder");
        try (Stream<Path> s = Files.list(out)) {
            if (s.findAny().isPresent()) throw new LatheException(out, "output folder is not empty");
        } catch (IOException e) {
            throw new LatheException(out, "cannot read: " + e.getMessage(), e);
        }
    }

    /**
     * Writes {@code pruned} to the folder {@code out} in {@code format}; values in {@code dtype} (F32, F16, BF16).
     * {@code structure} is "unstructured" or "N:M". Returns the bytes written.
     */
    public static long write(ModelPruner.PrunedSource pruned, Path out, Format format, GgmlType dtype, String structure, Progress progress) {
        return write(pruned, out, format, dtype, false, structure, progress);
    }

    /**
     * As above; with {@code int8} the pruned matrices' kept values are stored as int8 with one F16 scale per 32
     * columns of a row ({@code P.compressed} I8, {@code P.weight_scale} F16 [rows, cols/32]; scale = max|w|/127
     * of the 32 columns, as Q8_0), which {@link SparseSource} runs on the {@link ValueType#Q8} kernels. Weights
     * already on the Q8_0 grid (SparseGPT with {@code --type Q8_0}) are stored exactly. Lathe's layout:
     * compressed-tensors composes int8 quantization and sparsity differently. Other tensors are in {@code dtype}.
     */
    public static long write(ModelPruner.PrunedSource pruned, Path out, Format format, GgmlType dtype, boolean int8, String structure, Progress progress) {
        if (int8 && format == Format.DENSE) throw new LatheException("int8 values need a sparse format (bitmask or nm)");
        checkOutput(out);
        Path parent = out.toAbsolutePath().getParent();
        Path dense = null, sparse = null;
        try {
            Files.createDirectories(parent);
            dense = Files.createTempDirectory(parent, "." + out.getFileName() + ".dense-");
            // the dense HF export handles row permutation of GGUF Q/K, tokenizer files and config.json
            // (int8: exported in F32 so that the values are exact before they are encoded, the rest converted on the way)
            Converter.toHf(pruned, dense, int8 ? GgmlType.F32 : dtype, Long.MAX_VALUE, progress);
            Path result = dense;
            if (format != Format.DENSE) {
                sparse = Files.createTempDirectory(parent, "." + out.getFileName() + ".sparse-");
                writeSparse(dense, sparse, pruned.prunedNames(), format, structure, int8 ? dtype : null, progress);
                deleteTree(dense);
                dense = null;
                result = sparse;
            }
            if (Files.isDirectory(out)) Files.delete(out); // empty, checked above
            Files.move(result, out, StandardCopyOption.ATOMIC_MOVE);
            dense = sparse = null;
            return folderBytes(out);
        } catch (IOException e) {
            throw new LatheException(out, "cannot write: " + e.getMessage(), e);
        } finally {
            if (dense != null) deleteTree(dense);
            if (sparse != null) deleteTree(sparse);
        }
    }

    /** {@code int8Rest}: non-null for int8 values; the (F32) dense tensors are then converted to this type. */
    private static void writeSparse(Path denseFolder, Path outFolder, Set<String> prunedNames, Format format, String structure, GgmlType int8Rest,
                                    Progress progress) throws IOException {
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        long zeros = 0, total = 0;
        List<String> ignore = new ArrayList<>();
        List<String> keptDense = new ArrayList<>();
        try (HfWeightSource src = HfWeightSource.open(denseFolder)) {
            for (String c : src.tensorNames()) {
                String hf = src.hfName(c);
                Tensor t = src.tensor(c);
                if (!prunedNames.contains(c)) {
                    if (int8Rest != null && t.type() == GgmlType.F32 && int8Rest != GgmlType.F32) {
                        entries.add(new SafetensorsWriter.Entry(hf, SafetensorsWriter.dtypeOf(int8Rest), t.shape(), o -> {
                            for (float v : TensorOps.toFloats(t)) o.i16(int8Rest == GgmlType.F16 ? Float.floatToFloat16(v) : SparseMatrix.toBf16(v));
                        }));
                    } else {
                        entries.add(new SafetensorsWriter.Entry(hf, SafetensorsWriter.dtypeOf(t.type()), t.shape(), o -> o.segment(t.data())));
                    }
                    if (t.dims() == 2) ignore.add(hf.endsWith(".weight") ? hf.substring(0, hf.length() - 7) : hf);
                    continue;
                }
                if (!hf.endsWith(".weight")) throw new LatheException(denseFolder, "cannot compress '" + hf + "': not a .weight");
                String prefix = hf.substring(0, hf.length() - 7);
                int rows = (int) t.rows(), cols = (int) t.cols();
                float[] w = TensorOps.toFloats(t);
                int bytesPerRow = (cols + 7) / 8;
                byte[] bitmask = new byte[rows * bytesPerRow];
                long[] rowOffsets = new long[rows];
                int count = 0;
                boolean is24 = format == Format.NM && structure.equals("2:4");
                // 2:4: exactly two per group (fill with the first zeros); bitmask: the non-zeros. Only the bitmask
                // (1 bit per weight) is kept per matrix: the values are read again from the mapped dense folder when
                // they are written, so the peak heap is one matrix, not the model (a 1.1B model ran out of heap).
                for (int r = 0; r < rows; r++) {
                    rowOffsets[r] = count;
                    if (is24) {
                        for (int g = 0; g < cols; g += 4) {
                            int nz = 0;
                            for (int j = 0; j < 4; j++) if (w[r * cols + g + j] != 0f) nz++;
                            if (nz > 2) throw new LatheException(denseFolder, "'" + hf + "' row " + r + " breaks the 2:4 pattern");
                            int fill = 2 - nz;
                            for (int j = 0; j < 4; j++) {
                                boolean k = w[r * cols + g + j] != 0f;
                                if (!k && fill > 0) {
                                    fill--;
                                    k = true;
                                }
                                if (k) {
                                    int c0 = g + j;
                                    bitmask[r * bytesPerRow + (c0 >>> 3)] |= (byte) (1 << (c0 & 7));
                                    count++;
                                }
                            }
                        }
                    } else {
                        for (int c0 = 0; c0 < cols; c0++) {
                            if (w[r * cols + c0] != 0f) {
                                bitmask[r * bytesPerRow + (c0 >>> 3)] |= (byte) (1 << (c0 & 7));
                                count++;
                            }
                        }
                    }
                }
                for (float v : w) if (v == 0f) zeros++;
                total += w.length;
                final int n = count;
                // a sparse layout is only kept where it is smaller than the dense tensor it replaces
                long denseBytes = (long) rows * cols * (int8Rest != null ? int8Rest.typeSize : t.type().typeSize);
                if (storedBytes(rows, cols, n, int8Rest != null ? 1 : t.type().typeSize, int8Rest != null, is24) >= denseBytes) {
                    keptDense.add(hf);
                    GgmlType dt = int8Rest != null ? int8Rest : t.type();
                    if (dt == t.type()) {
                        entries.add(new SafetensorsWriter.Entry(hf, SafetensorsWriter.dtypeOf(dt), t.shape(), o -> o.segment(t.data())));
                    } else {
                        entries.add(new SafetensorsWriter.Entry(hf, SafetensorsWriter.dtypeOf(dt), t.shape(), o -> {
                            for (float v : TensorOps.toFloats(t)) o.i16(dt == GgmlType.F16 ? Float.floatToFloat16(v) : SparseMatrix.toBf16(v));
                        }));
                    }
                    ignore.add(prefix);
                    continue;
                }
                if (int8Rest != null) {
                    addInt8(entries, prefix, w, rows, cols, bitmask, n, is24 ? new long[]{rows, cols / 2} : new long[]{n}, denseFolder, hf);
                    entries.add(new SafetensorsWriter.Entry(prefix + ".bitmask", "U8", new long[]{rows, bytesPerRow}, o -> o.bytes(bitmask)));
                    entries.add(new SafetensorsWriter.Entry(prefix + ".shape", "I32", new long[]{2}, o -> o.bytes(ints(rows, cols))));
                    if (!is24) entries.add(new SafetensorsWriter.Entry(prefix + ".row_offsets", "I64", new long[]{rows}, o -> o.bytes(longs(rowOffsets))));
                    continue;
                }
                GgmlType vt = t.type();
                String dt = SafetensorsWriter.dtypeOf(vt);
                long[] valShape = is24 ? new long[]{rows, cols / 2} : new long[]{n};
                entries.add(new SafetensorsWriter.Entry(prefix + ".compressed", dt, valShape, o -> {
                    float[] wv = TensorOps.toFloats(t);
                    byte[] buf = new byte[n * vt.typeSize];
                    java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(buf).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                    for (int r = 0; r < rows; r++) {
                        for (int c0 = 0; c0 < cols; c0++) {
                            if ((bitmask[r * bytesPerRow + (c0 >>> 3)] >>> (c0 & 7) & 1) == 0) continue;
                            float v = wv[r * cols + c0];
                            switch (vt) {
                                case F32 -> bb.putFloat(v);
                                case F16 -> bb.putShort(Float.floatToFloat16(v));
                                default -> bb.putShort(SparseMatrix.toBf16(v));
                            }
                        }
                    }
                    o.bytes(buf);
                }));
                entries.add(new SafetensorsWriter.Entry(prefix + ".bitmask", "U8", new long[]{rows, bytesPerRow}, o -> o.bytes(bitmask)));
                entries.add(new SafetensorsWriter.Entry(prefix + ".shape", "I32", new long[]{2}, o -> o.bytes(ints(rows, cols))));
                if (!is24) entries.add(new SafetensorsWriter.Entry(prefix + ".row_offsets", "I64", new long[]{rows}, o -> o.bytes(longs(rowOffsets))));
            }
            ObjectMapper json = new ObjectMapper();
            ObjectNode cfg = (ObjectNode) json.readTree(Files.readString(denseFolder.resolve("config.json")));
            String fmt = format == Format.NM && structure.equals("2:4") ? SPARSE24 : BITMASK;
            ObjectNode q = cfg.putObject("quantization_config");
            q.put("quant_method", "compressed-tensors");
            q.put("format", fmt);
            q.put("version", "0.9.0");
            ObjectNode sc = q.putObject("sparsity_config");
            sc.put("format", fmt);
            sc.put("global_sparsity", total == 0 ? 0 : (double) zeros / total);
            sc.put("registry_requires_subclass", false);
            sc.put("sparsity_structure", format == Format.NM ? structure : "unstructured");
            sc.putArray("targets").add("Linear");
            if (int8Rest != null) {
                sc.put("lathe_value_type", "int8-g32");
                if (cfg.has("torch_dtype")) cfg.put("torch_dtype", int8Rest == GgmlType.F16 ? "float16" : int8Rest == GgmlType.BF16 ? "bfloat16" : "float32");
            }
            var ig = sc.putArray("ignore");
            ignore.stream().filter(s -> !s.equals("model.embed_tokens")).forEach(ig::add);
            HfFolderWriter.writeWeights(outFolder, entries, Long.MAX_VALUE, Map.of("format", "pt"), progress);
            HfFolderWriter.writeJson(outFolder.resolve("config.json"), cfg);
        }
        try (Stream<Path> s = Files.list(denseFolder)) {
            for (Path p : s.toList()) {
                String n = p.getFileName().toString();
                if (n.endsWith(".safetensors") || n.equals("config.json") || n.equals("model.safetensors.index.json")) continue;
                Files.copy(p, outFolder.resolve(n));
            }
        }
    }

    /**
     * Bytes a matrix takes in the sparse layout: bitmask, shape, row offsets (not for 2:4), {@code kept} values of
     * {@code valueBytes} each and, for int8 values, an F16 scale per 32 columns of a row. A matrix is written
     * sparse only where this is below its dense size.
     */
    public static long storedBytes(int rows, int cols, long kept, int valueBytes, boolean int8, boolean nm24) {
        long b = (long) rows * ((cols + 7) / 8) + 8 + (nm24 ? 0 : 8L * rows) + kept * valueBytes;
        return int8 ? b + 2L * rows * (cols / SparseKernels.Q8_GROUP) : b;
    }

    /** The kept values (set bits of {@code bitmask}, row-major) as int8 with an F16 scale per 32 columns of a row (Q8_0's scale rule). */
    private static void addInt8(List<SafetensorsWriter.Entry> entries, String prefix, float[] w, int rows, int cols, byte[] bitmask, int n, long[] shape,
                                Path folder, String hf) {
        int g = SparseKernels.Q8_GROUP;
        if (cols % g != 0) throw new LatheException(folder, "'" + hf + "': int8 sparse values need a row length divisible by " + g + ", got " + cols);
        int ng = cols / g;
        short[] sc = new short[rows * ng];
        float[] inv = new float[rows * ng];
        for (int r = 0; r < rows; r++) {
            for (int k = 0; k < ng; k++) {
                float amax = 0;
                for (int c = k * g; c < (k + 1) * g; c++) amax = Math.max(amax, Math.abs(w[r * cols + c]));
                sc[r * ng + k] = Float.floatToFloat16(amax / 127f);
                float d = Float.float16ToFloat(sc[r * ng + k]);
                inv[r * ng + k] = d == 0 ? 0 : 1f / d;
            }
        }
        byte[] q = new byte[n];
        int bytesPerRow = (cols + 7) / 8, i = 0;
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                if ((bitmask[r * bytesPerRow + (c >>> 3)] >>> (c & 7) & 1) == 0) continue;
                q[i++] = (byte) Math.max(-127, Math.min(127, Math.round(w[r * cols + c] * inv[r * ng + c / g])));
            }
        }
        entries.add(new SafetensorsWriter.Entry(prefix + ".compressed", "I8", shape, o -> o.bytes(q)));
        entries.add(new SafetensorsWriter.Entry(prefix + ".weight_scale", "F16", new long[]{rows, ng}, o -> { for (short v : sc) o.i16(v); }));
    }

    private static byte[] ints(int... v) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * v.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (int x : v) b.putInt(x);
        return b.array();
    }

    private static byte[] longs(long[] v) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 * v.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (long x : v) b.putLong(x);
        return b.array();
    }

    static long folderBytes(Path p) {
        try (Stream<Path> s = Files.walk(p)) {
            return s.filter(Files::isRegularFile).mapToLong(f -> {
                try {
                    return Files.size(f);
                } catch (IOException e) {
                    throw new LatheException(f, "cannot stat: " + e.getMessage(), e);
                }
            }).sum();
        } catch (IOException e) {
            throw new LatheException(p, "cannot list: " + e.getMessage(), e);
        }
    }

    static void deleteTree(Path p) {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path f : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(f);
        } catch (IOException ignored) {
            // best effort on cleanup of our own temp folder
        }
    }

    /** True when {@code folder}'s config.json declares a compressed-tensors sparse format. */
    public static boolean isSparseFolder(Path folder) {
        return SparseSource.sparseFormat(folder) != null;
    }

}
