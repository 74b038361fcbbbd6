package dev.lathe.prune;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lathe.LatheException;
import dev.lathe.io.ModelLoader;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.model.CpuCache;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.Linears;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.Parallel;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Reads a Hugging Face folder in the compressed-tensors "sparse-bitmask" or "sparse-24-bitmask" layout (see
 * {@link SparseSafetensors}). Dense tensors come from the folder as usual; a compressed matrix is offered twice:
 * {@link #tensor} decodes it to a dense F32 tensor (so converters and any other reader see the right weights),
 * while {@link #linearFactory} builds a {@link SparseLinear} straight from the stored values and bitmask, so
 * the engine runs the sparse kernels: {@code LlamaModel.load(src, pool, src.linearFactory())}, or {@link #load}.
 * <p>
 * Which kernels run the compressed matrices is a {@link Kernels} choice made when the folder is opened. The sparse
 * kernels read fewer bytes but do more work per byte (an expand per 16 columns, p5-bound on AVX-512), so they win
 * where decode streams the weights from memory and lose where the weights stay in the CPU caches: lathe-ref's
 * matrices (11.8 MB dense, inside a 260 MB L3) decode at 0.6-0.9x dense on the sparse kernels, a 1.1B model at 70 %
 * sparsity at 1.9x (docs/prune-measurements.md). {@link Kernels#AUTO} therefore runs the sparse kernels only when the
 * model's matrices, in the dense layout, are larger than the last-level cache ({@link CpuCache}); otherwise the
 * compressed matrices are expanded once into that dense layout (exactly: same values, zeros where pruned) and run
 * on the dense kernels. The file stays the small sparse one either way.
 */
public final class SparseSource implements WeightSource {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Which kernels run the compressed matrices. */
    public enum Kernels {
        /** sparse kernels when the dense matrices would not fit in the last-level cache, else dense ones */
        AUTO,
        /** always the sparse kernels */
        SPARSE,
        /** always the dense kernels (the matrices expanded once at load) */
        DENSE
    }

    private final HfWeightSource base;
    private final Path folder;
    private final List<SafetensorsFile> files;
    private final Map<String, SparseMatrix> sparse; // canonical name -> matrix
    private final String format;
    private final Set<String> names;
    private final boolean runSparse;
    private final String kernelsReason;

    private SparseSource(HfWeightSource base, Path folder, List<SafetensorsFile> files, Map<String, SparseMatrix> sparse, String format,
                         Kernels kernels) {
        this.base = base;
        this.folder = folder;
        this.files = files;
        this.sparse = sparse;
        this.format = format;
        Set<String> n = new LinkedHashSet<>(base.tensorNames());
        n.addAll(sparse.keySet());
        this.names = Set.copyOf(n);
        long dense = denseMatrixBytes(), llc = CpuCache.lastLevelBytes();
        this.runSparse = switch (kernels) {
            case SPARSE -> true;
            case DENSE -> false;
            case AUTO -> dense > llc;
        };
        String mb = String.format(java.util.Locale.ROOT, "%.1f MB", dense / 1e6), cache = String.format(java.util.Locale.ROOT, "%.1f MB", llc / 1e6);
        this.kernelsReason = switch (kernels) {
            case SPARSE -> "sparse (asked)";
            case DENSE -> "dense (asked)";
            case AUTO -> runSparse ? "sparse (auto: the matrices take " + mb + " dense, more than the " + cache + " last-level cache)"
                    : "dense (auto: the matrices take " + mb + " dense, within the " + cache + " last-level cache, where the dense kernels are faster)";
        };
    }

    /** Bytes of the model's matrices in the dense layout (compressed ones in their value type's dense layout); not the token embedding unless it is the head. */
    long denseMatrixBytes() {
        long b = 0;
        for (SparseMatrix m : sparse.values()) b += m.denseBytes();
        for (String n : base.tensorNames()) {
            if (n.equals(TensorNames.TOKEN_EMBD) && base.has(TensorNames.OUTPUT)) continue;
            Tensor t = base.tensor(n);
            if (t.dims() == 2) b += t.data().byteSize();
        }
        return b;
    }

    /** Whether the compressed matrices run on the sparse kernels (see {@link Kernels}). */
    public boolean runsSparse() {
        return runSparse;
    }

    /** Which kernels run the compressed matrices, and why, in words. */
    public String kernelsReason() {
        return kernelsReason;
    }

    /** The sparsity format named by {@code folder}/config.json, or null if it declares none. */
    public static String sparseFormat(Path folder) {
        Path cfg = folder.resolve("config.json");
        if (!Files.isRegularFile(cfg)) return null;
        try {
            JsonNode c = JSON.readTree(Files.readString(cfg));
            JsonNode q = c.path("quantization_config");
            if (q.isMissingNode()) q = c.path("compression_config");
            if (!q.path("quant_method").asText("").equals("compressed-tensors")) return null;
            String f = q.path("sparsity_config").path("format").asText(q.path("format").asText(""));
            return f.isEmpty() || f.equals("dense") ? null : f;
        } catch (IOException e) {
            throw new LatheException(cfg, "cannot read: " + e.getMessage(), e);
        }
    }

    /** Opens a compressed-tensors sparse folder ({@link Kernels#AUTO}) and checks its tensors against its config. */
    public static SparseSource open(Path folder) {
        return open(folder, Kernels.AUTO);
    }

    /** Opens a compressed-tensors sparse folder and checks its tensors against its config. */
    public static SparseSource open(Path folder, Kernels kernels) {
        String fmt = sparseFormat(folder);
        if (fmt == null) throw new LatheException(folder, "config.json declares no compressed-tensors sparsity format");
        if (!fmt.equals(SparseSafetensors.BITMASK) && !fmt.equals(SparseSafetensors.SPARSE24)) {
            throw new LatheException(folder, "unsupported compressed-tensors format '" + fmt + "' (sparse-bitmask and sparse-24-bitmask are)");
        }
        HfWeightSource base = HfWeightSource.open(folder);
        List<SafetensorsFile> files = new ArrayList<>();
        try {
            Map<String, SparseMatrix> sparse = new HashMap<>();
            try (var s = Files.list(folder)) {
                for (Path p : s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().toList()) files.add(SafetensorsFile.open(p));
            }
            for (SafetensorsFile f : files) {
                for (String n : f.entries().keySet()) {
                    if (!n.endsWith(".compressed")) continue;
                    String prefix = n.substring(0, n.length() - ".compressed".length());
                    String canonical = TensorNames.hfToGguf(prefix + ".weight");
                    if (canonical == null) throw new LatheException(f.path(), "compressed tensor '" + n + "' is not a known model weight");
                    if (sparse.containsKey(canonical) || base.has(canonical)) throw new LatheException(f.path(), "'" + prefix + "' is stored twice");
                    sparse.put(canonical, read(f, prefix, fmt));
                }
            }
            SparseSource src = new SparseSource(base, folder, List.copyOf(files), Map.copyOf(sparse), fmt, kernels);
            ModelLoader.checkTensors(src);
            return src;
        } catch (IOException e) {
            files.forEach(SafetensorsFile::close);
            base.close();
            throw new LatheException(folder, "cannot read: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            files.forEach(SafetensorsFile::close);
            base.close();
            throw e;
        }
    }

    private static long[] longsOf(SafetensorsFile f, String name) {
        SafetensorsFile.Entry e = f.entry(name);
        Tensor t = f.tensor(name);
        long n = t.numElements();
        long[] out = new long[(int) n];
        for (int i = 0; i < n; i++) {
            out[i] = switch (e.dtype()) {
                case "I64" -> t.data().get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), 8L * i);
                case "I32" -> t.data().get(Tensor.I32_LE, 4L * i);
                default -> throw new LatheException(f.path(), "'" + name + "' must be I32 or I64, not " + e.dtype());
            };
        }
        return out;
    }

    private static SparseMatrix read(SafetensorsFile f, String prefix, String fmt) {
        Path p = f.path();
        long[] shape = longsOf(f, prefix + ".shape");
        if (shape.length != 2 || shape[0] < 1 || shape[1] < 1 || shape[0] * shape[1] > Integer.MAX_VALUE - 64) {
            throw new LatheException(p, "'" + prefix + ".shape' is not a sane 2-D shape: " + java.util.Arrays.toString(shape));
        }
        int rows = (int) shape[0], cols = (int) shape[1], bpr = (cols + 7) / 8;
        SafetensorsFile.Entry bm = f.entry(prefix + ".bitmask");
        if (!(bm.dtype().equals("U8") || bm.dtype().equals("I8") || bm.dtype().equals("BOOL")) || !java.util.Arrays.equals(bm.shape(), new long[]{rows, bpr})) {
            throw new LatheException(p, "'" + prefix + ".bitmask' must be U8 [" + rows + ", " + bpr + "], got " + bm.dtype() + " " + java.util.Arrays.toString(bm.shape()));
        }
        if (fmt.equals(SparseSafetensors.SPARSE24) && cols % 4 != 0) throw new LatheException(p, "'" + prefix + "' has rows of " + cols + " columns, which 2:4 groups of four do not divide");
        int words = (cols + 63) >>> 6;
        long[] mask = new long[rows * words];
        int[] rowStart = new int[rows + 1];
        long count = 0;
        for (int r = 0; r < rows; r++) {
            rowStart[r] = (int) count;
            for (int b = 0; b < bpr; b++) {
                int v = bm.data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, (long) r * bpr + b) & 0xff;
                if (b == bpr - 1 && cols % 8 != 0 && (v >>> (cols % 8)) != 0) throw new LatheException(p, "'" + prefix + ".bitmask' row " + r + " marks columns past the row end");
                mask[r * words + (b >>> 3)] |= (long) v << ((b & 7) * 8);
                count += Integer.bitCount(v);
                if (fmt.equals(SparseSafetensors.SPARSE24)) {
                    // every group of four columns keeps exactly two (a byte holds two groups; a last half byte one)
                    boolean lowOk = Integer.bitCount(v & 0xf) == 2, highOk = Integer.bitCount(v >>> 4) == 2 || (8 * b + 4 >= cols && (v >>> 4) == 0);
                    if (!lowOk || !highOk) {
                        throw new LatheException(p, "'" + prefix + ".bitmask' row " + r + " breaks the 2:4 pattern in columns " + 8 * b + "-" + Math.min(cols, 8 * b + 8));
                    }
                }
            }
            if (fmt.equals(SparseSafetensors.SPARSE24) && count - rowStart[r] != cols / 2) {
                throw new LatheException(p, "'" + prefix + ".bitmask' row " + r + " keeps " + (count - rowStart[r]) + " values, 2:4 needs " + cols / 2);
            }
        }
        rowStart[rows] = (int) count;
        if (f.has(prefix + ".row_offsets")) {
            long[] ro = longsOf(f, prefix + ".row_offsets");
            if (ro.length != rows) throw new LatheException(p, "'" + prefix + ".row_offsets' has " + ro.length + " entries for " + rows + " rows");
            for (int r = 0; r < rows; r++) {
                if (ro[r] != rowStart[r]) throw new LatheException(p, "'" + prefix + ".row_offsets' row " + r + " is " + ro[r] + " but the bitmask gives " + rowStart[r]);
            }
        } else if (fmt.equals(SparseSafetensors.BITMASK)) {
            throw new LatheException(p, "missing tensor '" + prefix + ".row_offsets'");
        }
        Tensor vals = f.tensor(prefix + ".compressed");
        if (vals.numElements() != count) throw new LatheException(p, "'" + prefix + ".compressed' holds " + vals.numElements() + " values but the bitmask marks " + count);
        GgmlType t = vals.type();
        int pad = SparseKernels.L;
        float[] fl = null;
        java.lang.foreign.MemorySegment h = null;
        ValueType vt;
        switch (t) {
            case F32 -> {
                vt = ValueType.F32;
                fl = java.util.Arrays.copyOf(TensorOps.toFloats(vals), (int) count + pad);
                for (int i = 0; i < count; i++) if (!Float.isFinite(fl[i])) throw new LatheException(p, "'" + prefix + ".compressed' holds a non-finite value");
            }
            case F16, BF16 -> {
                vt = t == GgmlType.F16 ? ValueType.F16 : ValueType.BF16;
                // used in place (the mapped file): a heap copy would hold the values twice in memory, once in the
                // page cache mapped into this process and once on the heap (peak RSS 3.9 vs 2.5 GB dense, 1.1B at 50 %)
                h = vals.data();
                int expMask = t == GgmlType.F16 ? 0x7c00 : 0x7f80;
                for (long i = 0; i < count; i++) {
                    if ((h.get(Tensor.I16_LE, 2L * i) & expMask) == expMask) throw new LatheException(p, "'" + prefix + ".compressed' holds a non-finite value");
                }
            }
            case I8 -> {
                // Lathe's int8 values: one F16 scale per 32 columns of a row in <module>.weight_scale
                int g = SparseKernels.Q8_GROUP;
                if (cols % g != 0) throw new LatheException(p, "'" + prefix + ".compressed' is int8 but the row length " + cols + " is not a multiple of " + g);
                if (!f.has(prefix + ".weight_scale")) throw new LatheException(p, "missing tensor '" + prefix + ".weight_scale' (scales of the int8 values)");
                SafetensorsFile.Entry se = f.entry(prefix + ".weight_scale");
                if (!se.dtype().equals("F16") || !java.util.Arrays.equals(se.shape(), new long[]{rows, cols / g})) {
                    throw new LatheException(p, "'" + prefix + ".weight_scale' must be F16 [" + rows + ", " + cols / g + "], got " + se.dtype() + " " + java.util.Arrays.toString(se.shape()));
                }
                Tensor st = f.tensor(prefix + ".weight_scale");
                short[] sc = new short[rows * (cols / g)];
                for (int i = 0; i < sc.length; i++) {
                    sc[i] = st.data().get(Tensor.I16_LE, 2L * i);
                    if (((sc[i] >>> 10) & 0x1f) == 0x1f) throw new LatheException(p, "'" + prefix + ".weight_scale' holds a non-finite value");
                }
                byte[] q = new byte[(int) count + pad];
                for (int i = 0; i < count; i++) {
                    q[i] = vals.data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, i);
                    if (q[i] == -128) throw new LatheException(p, "'" + prefix + ".compressed' holds -128 (int8 values are in [-127, 127])");
                }
                return SparseMatrix.ofQ8Parts(rows, cols, mask, rowStart, q, sc);
            }
            default -> throw new LatheException(p, "'" + prefix + ".compressed' has dtype " + t + " (F32, F16, BF16, I8 are supported)");
        }
        return SparseMatrix.ofParts(rows, cols, vt, mask, rowStart, fl, h);
    }

    /** Builds the engine on this source with sparse layers for the compressed matrices. */
    public LlamaModel load(Parallel pool) {
        return LlamaModel.load(this, pool, linearFactory());
    }

    /** Layers for compressed matrices on the kernels chosen at open ({@link #runsSparse}), the usual layers for the rest. */
    public LlamaModel.LinearFactory linearFactory() {
        return (t, pool) -> {
            SparseMatrix m = sparse.get(t.name());
            return m != null ? layer(m, t.name(), pool) : Linears.of(t, pool);
        };
    }

    /** The engine asks the source for its layers: compressed matrices run on the kernels chosen at open. */
    @Override
    public dev.lathe.model.Linear linear(String canonicalName, Parallel pool) {
        SparseMatrix m = sparse.get(canonicalName);
        return m != null ? layer(m, canonicalName, pool) : base.linear(canonicalName, pool);
    }

    private dev.lathe.model.Linear layer(SparseMatrix m, String name, Parallel pool) {
        return runSparse ? new SparseLinear(m, pool, name) : Linears.of(m.toDenseTensor(name), pool);
    }

    /** The stored sparse matrix of a compressed weight, if it is one. */
    public Optional<SparseMatrix> sparse(String canonicalName) {
        return Optional.ofNullable(sparse.get(canonicalName));
    }

    public String format() {
        return format;
    }

    @Override
    public Path path() {
        return folder;
    }

    @Override
    public ModelConfig config() {
        return base.config();
    }

    @Override
    public Set<String> tensorNames() {
        return names;
    }

    @Override
    public long[] shape(String name) {
        SparseMatrix m = sparse.get(name);
        return m != null ? new long[]{m.rows(), m.cols()} : base.shape(name);
    }

    @Override
    public Tensor tensor(String name) {
        SparseMatrix m = sparse.get(name);
        if (m == null) return base.tensor(name);
        return TensorOps.viewFloats(name, new long[]{m.rows(), m.cols()}, m.toDense());
    }

    @Override
    public Optional<Path> hfFolder() {
        return base.hfFolder();
    }

    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
        base.close();
    }
}
