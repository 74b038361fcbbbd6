package dev.lathe.io;

import dev.lathe.tokenizer.Tokenizers;

import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.io.gguf.GgufValue;
import dev.lathe.io.gguf.GgufWriter;
import dev.lathe.io.hf.HfFolderWriter;
import dev.lathe.io.hf.HfTokenizerMetadata;
import dev.lathe.io.safetensors.SafetensorsWriter;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeScaling;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.BlockCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Checkpoint conversion, laid out like llama.cpp's tools:
 * <ul>
 * <li>{@link #toGguf}: like {@code convert_hf_to_gguf.py} (F32/F16/BF16) followed, for Q8_0/Q4_0, by
 *     {@code llama-quantize --pure}: arch metadata, Q/K rows permuted to the interleaved RoPE layout for arch
 *     llama (none for qwen2), 1-D tensors (norms, biases) kept F32, {@code general.file_type}, tokenizer
 *     metadata from tokenizer.json when the source folder has one. Quantization is round-to-nearest via
 *     {@link BlockCodecs}. F32/F16/BF16 files list tensors in llama.cpp's canonical order (token_embd, each
 *     block, output_norm, output), quantized ones in llama-quantize's order (non-block tensors by name, then
 *     each block's tensors by name).</li>
 * <li>{@link #toHf}: a Hugging Face folder (inverse permutation, weights dequantized to F32/F16/BF16,
 *     config.json, tokenizer files passed through when the source is an HF folder).</li>
 * </ul>
 * Tensors are streamed one row at a time, so a model never has to fit in the heap.
 */
public final class Converter {
    /** Types {@link #toGguf} writes. */
    public static final Set<GgmlType> GGUF_TYPES = Set.of(GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0);
    /** Types {@link #toHf} writes. */
    public static final Set<GgmlType> HF_TYPES = Set.of(GgmlType.F32, GgmlType.F16, GgmlType.BF16);

    private static final String[] BLOCK_ORDER = {"attn_norm.weight", "attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias",
            "attn_v.weight", "attn_v.bias", "attn_output.weight", "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
    private static final Pattern BLK = Pattern.compile("blk\\.(\\d+)\\..*");

    /** llama-quantize's tensor order (llama_model_loader's weight_name_comparer): block index (-1 for none) first, then name. */
    public static final Comparator<String> LLAMA_QUANTIZE_ORDER = Comparator.comparingInt(Converter::layerOf).thenComparing(Comparator.naturalOrder());

    private Converter() {}

    /** llama.cpp's LLAMA_FTYPE for a whole-model type ("MOSTLY_x"; ALL_F32 = 0). */
    public static int fileType(GgmlType t) {
        return switch (t) {
            case F32 -> 0;
            case F16 -> 1;
            case Q4_0 -> 2;
            case Q8_0 -> 7;
            case BF16 -> 32;
            default -> throw new IllegalArgumentException(t + " is not a conversion target (F32, F16, BF16, Q8_0, Q4_0)");
        };
    }

    /** The RoPE layout GGUF uses for an arch: NEOX (rotate_half) for qwen2, interleaved otherwise. */
    public static RopeStyle ggufRopeStyle(String arch) {
        return arch.equals("qwen2") ? RopeStyle.HALF : RopeStyle.INTERLEAVED;
    }

    /** Opens any checkpoint ({@link ModelLoader}) and converts it to GGUF. */
    public static void toGguf(Path source, Path out, GgmlType type, Progress progress) {
        try (WeightSource s = ModelLoader.open(source)) {
            toGguf(s, out, type, progress);
        }
    }

    /** Opens any checkpoint ({@link ModelLoader}) and converts it to an HF folder. */
    public static void toHf(Path source, Path outFolder, GgmlType dtype, Progress progress) {
        try (WeightSource s = ModelLoader.open(source)) {
            toHf(s, outFolder, dtype, HfFolderWriter.DEFAULT_MAX_SHARD_BYTES, progress);
        }
    }

    /** Builds the GGUF writer (metadata and lazily produced tensors) for {@code src} converted to {@code type}. */
    public static GgufWriter ggufWriter(WeightSource src, GgmlType type, String name) {
        if (!GGUF_TYPES.contains(type)) throw new LatheException(src.path(), "cannot convert to " + type + " (supported: F32, F16, BF16, Q8_0, Q4_0)");
        if (!BlockCodecs.supports(type)) throw new LatheException(src.path(), "tensor type " + type + " has no codec in this build");
        ModelLoader.checkTensors(src);
        ModelConfig c = src.config();
        // convert_hf_to_gguf.py converts MistralForCausalLM with LlamaModel: arch llama
        String arch = c.arch().equals("qwen2") ? "qwen2" : "llama";
        RopeStyle target = ggufRopeStyle(arch);
        GgufWriter w = new GgufWriter();
        w.setString("general.architecture", arch);
        w.setString("general.type", "model");
        if (name != null && !name.isEmpty()) w.setString("general.name", name);
        w.setU32(arch + ".block_count", c.nLayers());
        w.setU32(arch + ".context_length", c.contextLength());
        w.setU32(arch + ".embedding_length", c.dim());
        w.setU32(arch + ".feed_forward_length", c.ffnDim());
        w.setU32(arch + ".attention.head_count", c.nHeads());
        w.setU32(arch + ".attention.head_count_kv", c.nKvHeads());
        w.setF32(arch + ".rope.freq_base", c.ropeTheta());
        w.setF32(arch + ".attention.layer_norm_rms_epsilon", c.normEps());
        if (c.headDim() * c.nHeads() != c.dim()) {
            w.setU32(arch + ".attention.key_length", c.headDim());
            w.setU32(arch + ".attention.value_length", c.headDim());
        }
        w.setU32("general.file_type", fileType(type));
        if (arch.equals("llama")) {
            w.setU32(arch + ".vocab_size", c.vocabSize());
            w.setU32(arch + ".rope.dimension_count", c.headDim());
        }
        src.hfFolder().ifPresent(folder -> HfTokenizerMetadata.addTo(folder, c, w));
        src.gguf().ifPresent(g -> copyTokenizerKeys(g, w));
        w.setU32("general.quantization_version", 2);

        List<String> names = new ArrayList<>();
        if (arch.equals("llama") && c.ropeScaling() != null) names.add("rope_freqs.weight");
        names.add(TensorNames.TOKEN_EMBD);
        for (int l = 0; l < c.nLayers(); l++) {
            for (String s : BLOCK_ORDER) {
                String n = TensorNames.layer(l, s);
                if (src.has(n)) names.add(n);
            }
        }
        names.add(TensorNames.OUTPUT_NORM);
        if (src.has(TensorNames.OUTPUT) && !c.tiedEmbeddings()) names.add(TensorNames.OUTPUT);
        for (String n : names) {
            if (n.equals("rope_freqs.weight")) {
                float[] f = llama3RopeFactors(c.ropeTheta(), c.headDim(), c.ropeScaling());
                w.addTensor(n, GgmlType.F32, new long[]{f.length}, out -> {
                    for (float x : f) out.f32(x);
                });
                continue;
            }
            int permuteHeads = permuteHeads(n, c);
            boolean permute = permuteHeads > 0 && c.ropeStyle() != target;
            if (src.computesTensor(n)) {
                // computed (a pruned matrix): made when written, so only one is in memory at a time
                long[] shape = src.shape(n);
                GgmlType tt = shape.length >= 2 ? type : GgmlType.F32;
                w.addTensor(n, tt, shape, out -> rows(src.path(), src.tensor(n), tt, permute ? permuteHeads : 0, c.headDim(), c.ropeStyle() == RopeStyle.HALF).write(out));
                continue;
            }
            Tensor t = src.tensor(n);
            GgmlType tt = t.dims() >= 2 ? type : GgmlType.F32;
            w.addTensor(n, tt, t.shape(), rows(src.path(), t, tt, permute ? permuteHeads : 0, c.headDim(), c.ropeStyle() == RopeStyle.HALF));
        }
        if (type.isQuantized()) {
            // llama-quantize: gguf_set_val_* removes and re-appends, so these two keys end the metadata
            w.remove("general.quantization_version").remove("general.file_type");
            w.setU32("general.quantization_version", 2);
            w.setU32("general.file_type", fileType(type));
            w.sortTensors(Comparator.comparing(GgufWriter.TensorEntry::name, LLAMA_QUANTIZE_ORDER));
        }
        return w;
    }

    /** Converts a checkpoint to a GGUF file of {@code type}. */
    public static void toGguf(WeightSource src, Path out, GgmlType type, Progress progress) {
        Path fn = src.path().toAbsolutePath().getFileName();
        String name = fn == null ? "model" : fn.toString().replaceFirst("\\.(gguf|bin|safetensors)$", "");
        ggufWriter(src, type, name).write(out, progress);
    }

    /** Converts a checkpoint to a Hugging Face folder with weights in {@code dtype} (F32, F16 or BF16). */
    public static void toHf(WeightSource src, Path outFolder, GgmlType dtype, long maxShardBytes, Progress progress) {
        if (!HF_TYPES.contains(dtype)) throw new LatheException(src.path(), "cannot write Hugging Face weights as " + dtype + " (supported: F32, F16, BF16)");
        ModelLoader.checkTensors(src);
        ModelConfig c = src.config();
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        for (String n : src.tensorNames()) {
            String hf = TensorNames.ggufToHf(n);
            if (hf == null) continue; // rope_freqs and other derived tensors: config.json's rope_scaling carries them
            if (n.equals(TensorNames.OUTPUT) && c.tiedEmbeddings()) continue;
            int permuteHeads = permuteHeads(n, c);
            boolean permute = permuteHeads > 0 && c.ropeStyle() != RopeStyle.HALF;
            if (src.computesTensor(n)) {
                entries.add(new SafetensorsWriter.Entry(hf, SafetensorsWriter.dtypeOf(dtype), src.shape(n),
                        out -> rows(src.path(), src.tensor(n), dtype, permute ? permuteHeads : 0, c.headDim(), false).write(out)));
                continue;
            }
            Tensor t = src.tensor(n);
            GgufWriter.TensorData rows = rows(src.path(), t, dtype, permute ? permuteHeads : 0, c.headDim(), false);
            entries.add(new SafetensorsWriter.Entry(hf, SafetensorsWriter.dtypeOf(dtype), t.shape(), rows::write));
        }
        Integer bos = null, eos = null;
        if (src.gguf().isPresent()) {
            GgufFile g = src.gguf().get();
            if (g.get("tokenizer.ggml.bos_token_id") != null) bos = (int) g.getLong("tokenizer.ggml.bos_token_id", 0);
            if (g.get("tokenizer.ggml.eos_token_id") != null) eos = (int) g.getLong("tokenizer.ggml.eos_token_id", 0);
        }
        HfFolderWriter.writeWeights(outFolder, entries, maxShardBytes, Map.of("format", "pt"), progress);
        HfFolderWriter.writeConfig(outFolder, c.withRopeStyle(RopeStyle.HALF), dtype, bos, eos);
        src.hfFolder().ifPresent(f -> HfFolderWriter.copyTokenizerFiles(f, outFolder));
        src.gguf().flatMap(Tokenizers::fromGguf).ifPresent(t -> Tokenizers.writeHf(t, outFolder));
    }

    /** Number of heads whose rows a Q/K weight or bias is made of, or 0 for any other tensor. */
    private static int permuteHeads(String name, ModelConfig c) {
        if (name.endsWith(".attn_q.weight") || name.endsWith(".attn_q.bias")) return c.nHeads();
        if (name.endsWith(".attn_k.weight") || name.endsWith(".attn_k.bias")) return c.nKvHeads();
        return 0;
    }

    private static int layerOf(String name) {
        Matcher m = BLK.matcher(name);
        return m.matches() ? Integer.parseInt(m.group(1)) : -1;
    }

    /** Copies the tokenizer.* keys of a GGUF source (GGUF -> GGUF re-typing keeps the vocabulary). */
    private static void copyTokenizerKeys(GgufFile g, GgufWriter w) {
        for (Map.Entry<String, GgufValue> e : g.metadata().entrySet()) {
            if (e.getKey().startsWith("tokenizer.")) w.set(e.getKey(), e.getValue());
        }
    }

    /**
     * Streams a tensor row by row into {@code target}: decode a source row (with the Q/K row permutation when
     * {@code heads > 0}), encode it. Bytes are copied unchanged when no conversion is needed. Vectors (1-D) are
     * a single row. {@code halfToInterleaved} picks the permutation's direction.
     */
    static GgufWriter.TensorData rows(Path file, Tensor t, GgmlType target, int heads, int headDim, boolean halfToInterleaved) {
        if (t.type() == target && heads == 0) return out -> out.segment(t.data());
        if (t.cols() % target.blockSize != 0) {
            throw new LatheException(file, "tensor '" + t.name() + "' row length " + t.cols() + " is not a multiple of the " + target + " block size " + target.blockSize);
        }
        if (!BlockCodecs.supports(t.type())) throw new LatheException(file, "tensor '" + t.name() + "' has type " + t.type() + ", which this build cannot decode");
        // a permuted vector (a q/k bias) is permuted element by element: rows of one element
        boolean vectorRows = heads > 0 && t.dims() == 1;
        long rows = vectorRows ? t.numElements() : t.rows();
        long colsL = vectorRows ? 1 : t.cols();
        if (heads > 0 && rows != (long) heads * headDim) {
            throw new LatheException(file, "tensor '" + t.name() + "' has " + rows + " rows, expected " + heads + " heads x " + headDim);
        }
        if (colsL > Integer.MAX_VALUE / 4) throw new LatheException(file, "tensor '" + t.name() + "' rows are too long (" + colsL + ")");
        int cols = (int) colsL;
        if (cols % target.blockSize != 0 || cols % t.type().blockSize != 0) {
            throw new LatheException(file, "tensor '" + t.name() + "' cannot be permuted element-wise as " + t.type() + " -> " + target);
        }
        BlockCodec dec = BlockCodecs.get(t.type());
        BlockCodec enc = BlockCodecs.get(target);
        long srcRowBytes = t.type().bytesFor(cols);
        int dstRowBytes = (int) target.bytesFor(cols);
        return out -> {
            float[] row = new float[cols];
            MemorySegment buf = MemorySegment.ofArray(new byte[dstRowBytes]);
            int half = headDim / 2;
            for (long r = 0; r < rows; r++) {
                long s = r;
                if (heads > 0) {
                    int h = (int) (r / headDim), j = (int) (r % headDim);
                    // interleaved row 2i+k of a head <-> half-split row k*d/2 + i
                    int within = halfToInterleaved ? (j % 2) * half + j / 2 : (j % half) * 2 + j / half;
                    s = (long) h * headDim + within;
                }
                dec.dequantize(t.data(), s * srcRowBytes, row, 0, cols);
                enc.quantize(row, 0, cols, null, buf, 0);
                out.segment(buf);
            }
        };
    }

    /** convert_hf_to_gguf.py's rope_freqs for Llama 3 scaling: one factor per rotated pair. */
    public static float[] llama3RopeFactors(float theta, int headDim, RopeScaling rs) {
        float[] f = new float[headDim / 2];
        double lowWavelen = rs.originalContextLength() / (double) rs.lowFreqFactor();
        double highWavelen = rs.originalContextLength() / (double) rs.highFreqFactor();
        for (int i = 0; i < f.length; i++) {
            float freq = (float) (1.0 / Math.pow(theta, (float) (2 * i) / headDim));
            double wavelen = 2 * Math.PI / freq;
            if (wavelen < highWavelen) f[i] = 1;
            else if (wavelen > lowWavelen) f[i] = rs.factor();
            else {
                double smooth = (rs.originalContextLength() / wavelen - rs.lowFreqFactor()) / (rs.highFreqFactor() - rs.lowFreqFactor());
                f[i] = (float) (1 / ((1 - smooth) / rs.factor() + smooth));
            }
        }
        return f;
    }
}
