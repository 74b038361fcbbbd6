package dev.lathe.io.hf;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lathe.LatheException;
import dev.lathe.io.AtomicOutput;
import dev.lathe.io.Progress;
import dev.lathe.io.safetensors.SafetensorsWriter;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import dev.lathe.tensor.GgmlType;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes a Hugging Face model folder: config.json from a {@link ModelConfig}, the weights as
 * model.safetensors or, above a size limit, as model-0000i-of-0000n.safetensors shards with a
 * model.safetensors.index.json, and tokenizer files copied from another folder. Every file is written
 * atomically.
 */
public final class HfFolderWriter {
    /** Hugging Face's default shard size ("5GB"). */
    public static final long DEFAULT_MAX_SHARD_BYTES = 5_000_000_000L;
    /** Files a tokenizer may consist of; {@link #copyTokenizerFiles} copies those present. */
    public static final List<String> TOKENIZER_FILES = List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json", "generation_config.json");

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private HfFolderWriter() {}

    /** The HF torch_dtype name of a float type. */
    public static String torchDtype(GgmlType t) {
        return switch (t) {
            case F32 -> "float32";
            case F16 -> "float16";
            case BF16 -> "bfloat16";
            default -> throw new IllegalArgumentException(t + " is not a Hugging Face weight dtype (F32, F16, BF16)");
        };
    }

    /** config.json content for a llama, mistral or qwen2 model (keys sorted, like transformers writes them). */
    public static ObjectNode configJson(ModelConfig c, GgmlType dtype, Integer bosTokenId, Integer eosTokenId) {
        Map<String, Object> m = new TreeMap<>();
        String arch = c.arch();
        switch (arch) {
            case "llama" -> {
                m.put("architectures", List.of("LlamaForCausalLM"));
                m.put("attention_bias", c.qkvBias());
                m.put("mlp_bias", false);
                m.put("head_dim", c.headDim());
                m.put("pretraining_tp", 1);
            }
            case "mistral" -> {
                m.put("architectures", List.of("MistralForCausalLM"));
                m.put("head_dim", c.headDim());
                m.put("sliding_window", null);
            }
            case "qwen2" -> {
                m.put("architectures", List.of("Qwen2ForCausalLM"));
                m.put("use_sliding_window", false);
                m.put("sliding_window", c.contextLength());
                m.put("max_window_layers", c.nLayers());
                if (c.headDim() * c.nHeads() != c.dim()) m.put("head_dim", c.headDim());
            }
            default -> throw new IllegalArgumentException("unsupported architecture " + arch);
        }
        m.put("model_type", arch);
        m.put("attention_dropout", 0.0);
        m.put("hidden_act", "silu");
        m.put("hidden_size", c.dim());
        m.put("intermediate_size", c.ffnDim());
        m.put("max_position_embeddings", c.contextLength());
        m.put("num_attention_heads", c.nHeads());
        m.put("num_hidden_layers", c.nLayers());
        m.put("num_key_value_heads", c.nKvHeads());
        m.put("rms_norm_eps", shortest(c.normEps()));
        m.put("rope_theta", shortest(c.ropeTheta()));
        if (c.ropeScaling() != null) {
            Map<String, Object> rs = new TreeMap<>();
            rs.put("factor", shortest(c.ropeScaling().factor()));
            rs.put("low_freq_factor", shortest(c.ropeScaling().lowFreqFactor()));
            rs.put("high_freq_factor", shortest(c.ropeScaling().highFreqFactor()));
            rs.put("original_max_position_embeddings", c.ropeScaling().originalContextLength());
            rs.put("rope_type", "llama3");
            m.put("rope_scaling", rs);
        } else {
            m.put("rope_scaling", null);
        }
        m.put("tie_word_embeddings", c.tiedEmbeddings());
        m.put("torch_dtype", torchDtype(dtype));
        m.put("use_cache", true);
        m.put("vocab_size", c.vocabSize());
        if (bosTokenId != null) m.put("bos_token_id", bosTokenId);
        if (eosTokenId != null) m.put("eos_token_id", eosTokenId);
        return JSON.valueToTree(m);
    }

    /** float -> the double with the same shortest decimal form (1e-5f is written 1.0E-5, not 9.99999974737875E-6). */
    static double shortest(float f) {
        return Double.parseDouble(Float.toString(f));
    }

    public static void writeConfig(Path folder, ModelConfig c, GgmlType dtype, Integer bosTokenId, Integer eosTokenId) {
        if (c.ropeStyle() != RopeStyle.HALF) {
            throw new IllegalArgumentException("a Hugging Face config describes rotate_half weights; permute Q/K to RopeStyle.HALF first");
        }
        writeJson(folder.resolve("config.json"), configJson(c, dtype, bosTokenId, eosTokenId));
    }

    public static void writeJson(Path file, Object json) {
        byte[] b;
        try {
            b = (JSON.writeValueAsString(json) + "\n").getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        AtomicOutput.write(file, out -> out.bytes(b));
    }

    /**
     * Writes the tensors (HF names) as model.safetensors, or as shards plus an index when their data exceeds
     * {@code maxShardBytes} (tensors are packed in sorted-name order, a new shard starting when the next tensor
     * would overflow the current one). A stale single file or index of the other layout is removed. Returns
     * the files written.
     */
    public static List<Path> writeWeights(Path folder, List<SafetensorsWriter.Entry> tensors, long maxShardBytes, Map<String, String> metadata, Progress progress) {
        if (maxShardBytes <= 0) throw new IllegalArgumentException("maxShardBytes must be positive");
        List<SafetensorsWriter.Entry> sorted = new ArrayList<>(tensors);
        sorted.sort(java.util.Comparator.comparing(SafetensorsWriter.Entry::name));
        List<List<SafetensorsWriter.Entry>> shards = new ArrayList<>();
        List<SafetensorsWriter.Entry> cur = new ArrayList<>();
        long curBytes = 0, total = 0;
        for (SafetensorsWriter.Entry e : sorted) {
            if (!cur.isEmpty() && curBytes + e.byteSize() > maxShardBytes) {
                shards.add(cur);
                cur = new ArrayList<>();
                curBytes = 0;
            }
            cur.add(e);
            curBytes += e.byteSize();
            total += e.byteSize();
        }
        if (!cur.isEmpty() || shards.isEmpty()) shards.add(cur);
        List<Path> written = new ArrayList<>();
        long[] done = {0};
        final long totalBytes = total;
        progress.update("write", 0, totalBytes);
        Map<String, String> weightMap = new TreeMap<>();
        for (int i = 0; i < shards.size(); i++) {
            String name = shards.size() == 1 ? "model.safetensors" : String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
            SafetensorsWriter w = new SafetensorsWriter();
            metadata.forEach(w::metadata);
            for (SafetensorsWriter.Entry e : shards.get(i)) {
                // report after every tensor
                w.add(e.name(), e.dtype(), e.shape(), out -> {
                    e.data().write(out);
                    done[0] += e.byteSize();
                    progress.update("write", done[0], totalBytes);
                });
                weightMap.put(e.name(), name);
            }
            Path p = folder.resolve(name);
            w.write(p);
            written.add(p);
        }
        if (shards.size() > 1) {
            Map<String, Object> idx = new java.util.LinkedHashMap<>();
            idx.put("metadata", Map.of("total_size", total));
            idx.put("weight_map", weightMap);
            Path p = folder.resolve("model.safetensors.index.json");
            writeJson(p, idx);
            written.add(p);
        }
        // only now that the new weights are complete, drop a stale file of the other layout
        try {
            Files.deleteIfExists(folder.resolve(shards.size() == 1 ? "model.safetensors.index.json" : "model.safetensors"));
        } catch (IOException e) {
            throw new LatheException(folder, "cannot remove the stale weights file: " + e.getMessage(), e);
        }
        return written;
    }

    /** Copies the tokenizer files present in {@code from} (see {@link #TOKENIZER_FILES}) into {@code to}; returns those copied. */
    public static List<Path> copyTokenizerFiles(Path from, Path to) {
        List<Path> copied = new ArrayList<>();
        if (from.toAbsolutePath().normalize().equals(to.toAbsolutePath().normalize())) return copied;
        for (String n : TOKENIZER_FILES) {
            Path src = from.resolve(n);
            if (!Files.isRegularFile(src)) continue;
            byte[] b;
            try {
                b = Files.readAllBytes(src);
            } catch (IOException e) {
                throw new LatheException(src, "cannot read: " + e.getMessage(), e);
            }
            Path dst = to.resolve(n);
            AtomicOutput.write(dst, out -> out.bytes(b));
            copied.add(dst);
        }
        return copied;
    }
}
