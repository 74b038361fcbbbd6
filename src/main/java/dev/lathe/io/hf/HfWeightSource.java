package dev.lathe.io.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lathe.LatheException;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeScaling;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * A Hugging Face model folder (config.json + model.safetensors or a sharded index) as a
 * {@link WeightSource}. A single .safetensors file with a config.json beside it also works.
 */
public final class HfWeightSource implements WeightSource {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path path;
    private final Path folder;
    private final ModelConfig config;
    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile> byCanonical;
    private final Map<String, String> hfName;
    private final PackedWeights packed;

    private HfWeightSource(Path path, Path folder, ModelConfig config, List<SafetensorsFile> files,
                           Map<String, SafetensorsFile> byCanonical, Map<String, String> hfName, PackedWeights packed) {
        this.packed = packed;
        this.path = path;
        this.folder = folder;
        this.config = config;
        this.files = files;
        this.byCanonical = byCanonical;
        this.hfName = hfName;
    }

    /** Opens a folder, or a .safetensors file whose folder holds config.json. */
    public static HfWeightSource open(Path path) {
        Path folder = Files.isDirectory(path) ? path : path.toAbsolutePath().getParent();
        Path configPath = folder.resolve("config.json");
        if (!Files.isRegularFile(configPath)) throw new LatheException(path, "not a Hugging Face model: no config.json");
        JsonNode cfg = readJson(configPath);
        List<Path> shards = new ArrayList<>();
        if (!Files.isDirectory(path)) {
            shards.add(path);
        } else if (Files.isRegularFile(folder.resolve("model.safetensors.index.json"))) {
            Path idx = folder.resolve("model.safetensors.index.json");
            JsonNode wm = readJson(idx).path("weight_map");
            if (!wm.isObject()) throw new LatheException(idx, "no weight_map object");
            Set<String> names = new LinkedHashSet<>();
            wm.fields().forEachRemaining(e -> names.add(e.getValue().asText()));
            for (String n : names) {
                Path s = folder.resolve(n).normalize();
                if (!s.startsWith(folder.normalize()) || !Files.isRegularFile(s)) throw new LatheException(idx, "shard '" + n + "' is missing");
                shards.add(s);
            }
        } else if (Files.isRegularFile(folder.resolve("model.safetensors"))) {
            shards.add(folder.resolve("model.safetensors"));
        } else {
            throw new LatheException(path, "no model.safetensors or model.safetensors.index.json");
        }
        List<SafetensorsFile> files = new ArrayList<>();
        try {
            Map<String, SafetensorsFile> byCanonical = new LinkedHashMap<>();
            Map<String, String> hfName = new LinkedHashMap<>();
            for (Path s : shards) {
                SafetensorsFile f = SafetensorsFile.open(s);
                files.add(f);
                for (String n : f.entries().keySet()) {
                    String c = TensorNames.hfToGguf(n);
                    if (c == null) continue; // rotary inv_freq and other buffers
                    if (byCanonical.put(c, f) != null) throw new LatheException(s, "tensor '" + n + "' appears in more than one shard");
                    hfName.put(c, n);
                }
            }
            PackedWeights packed = PackedWeights.scan(configPath, cfg, files);
            for (Map.Entry<String, PackedWeights.Entry> e : packed.entries.entrySet()) {
                if (byCanonical.put(e.getKey(), e.getValue().file()) != null) throw new LatheException(e.getValue().file().path(), "tensor '" + e.getKey() + "' is stored both packed and unpacked");
                hfName.put(e.getKey(), e.getValue().hfBase() + ".weight_packed");
            }
            ModelConfig config = readConfig(configPath, cfg, byCanonical, files.get(0));
            return new HfWeightSource(path, folder, config, List.copyOf(files), Collections.unmodifiableMap(byCanonical), hfName, packed);
        } catch (RuntimeException e) {
            files.forEach(SafetensorsFile::close);
            throw e;
        }
    }

    static JsonNode readJson(Path p) {
        try {
            JsonNode n = JSON.readTree(Files.readString(p));
            if (n == null || !n.isObject()) throw new LatheException(p, "invalid JSON: not an object");
            return n;
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new LatheException(p, "invalid JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new LatheException(p, "cannot read: " + e.getMessage(), e);
        }
    }

    static ModelConfig readConfig(Path p, JsonNode c, Map<String, SafetensorsFile> tensors, SafetensorsFile first) {
        String type = c.path("model_type").asText("");
        if (!type.equals("llama") && !type.equals("mistral") && !type.equals("qwen2")) {
            throw new LatheException(p, "unsupported model_type '" + type + "' (llama, mistral, qwen2 are supported)");
        }
        int dim = req(p, c, "hidden_size");
        int layers = req(p, c, "num_hidden_layers");
        int heads = req(p, c, "num_attention_heads");
        int kv = c.has("num_key_value_heads") && !c.get("num_key_value_heads").isNull() ? req(p, c, "num_key_value_heads") : heads;
        int headDim = c.has("head_dim") && !c.get("head_dim").isNull() ? req(p, c, "head_dim") : (heads > 0 ? dim / heads : 0);
        int ffn = req(p, c, "intermediate_size");
        int vocab = req(p, c, "vocab_size");
        float eps = (float) c.path("rms_norm_eps").asDouble(1e-6);
        float theta = (float) c.path("rope_theta").asDouble(10000.0);
        int ctx = c.path("max_position_embeddings").asInt(2048);
        boolean tied = c.has("tie_word_embeddings") ? c.get("tie_word_embeddings").asBoolean() : !tensors.containsKey(TensorNames.OUTPUT);
        if (!tied && !tensors.containsKey(TensorNames.OUTPUT)) tied = true; // no lm_head stored: it is tied
        boolean bias = type.equals("qwen2") || c.path("attention_bias").asBoolean(false);
        RopeScaling scaling = null;
        JsonNode rs = c.path("rope_scaling");
        if (rs.isObject()) {
            String rt = rs.path("rope_type").asText(rs.path("type").asText(""));
            if (rt.equals("llama3")) {
                scaling = new RopeScaling((float) rs.path("factor").asDouble(8), (float) rs.path("low_freq_factor").asDouble(1),
                        (float) rs.path("high_freq_factor").asDouble(4), rs.path("original_max_position_embeddings").asInt(8192));
            } else if (!rt.isEmpty() && !rt.equals("default")) {
                throw new LatheException(p, "unsupported rope_scaling type '" + rt + "'");
            }
        }
        return new ModelConfig(type, dim, layers, heads, kv, headDim, ffn, vocab, eps, theta, RopeStyle.HALF, scaling, ctx, tied, bias).validate(p);
    }

    private static int req(Path p, JsonNode c, String key) {
        JsonNode v = c.get(key);
        if (v == null || !v.canConvertToInt()) throw new LatheException(p, "config '" + key + "' is missing or not an integer");
        return v.asInt();
    }

    @Override
    public Path path() {
        return path;
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public Set<String> tensorNames() {
        return byCanonical.keySet();
    }

    @Override
    public Tensor tensor(String canonicalName) {
        SafetensorsFile f = byCanonical.get(canonicalName);
        if (f == null) {
            String hf = TensorNames.ggufToHf(canonicalName);
            throw new LatheException(path, "missing tensor '" + (hf != null ? hf : canonicalName) + "'");
        }
        if (packed.has(canonicalName)) return packed.tensor(canonicalName);
        Tensor t = f.tensor(hfName.get(canonicalName));
        return new Tensor(canonicalName, t.type(), t.shape(), t.data());
    }

    @Override
    public long[] shape(String canonicalName) {
        return packed.has(canonicalName) ? packed.shape(canonicalName) : tensor(canonicalName).shape();
    }

    /** compressed-tensors packed integer weights run as {@link dev.lathe.model.PackedIntLinear}; others as stored. */
    @Override
    public dev.lathe.model.Linear linear(String canonicalName, dev.lathe.model.Parallel pool) {
        if (packed.has(canonicalName)) return packed.linear(canonicalName, pool);
        return WeightSource.super.linear(canonicalName, pool);
    }

    /** The HF name of a canonical tensor name in this checkpoint. */
    public String hfName(String canonicalName) {
        return hfName.get(canonicalName);
    }

    /** The folder's tokenizer.json, if present. */
    public Optional<Path> tokenizerJson() {
        Path p = folder.resolve("tokenizer.json");
        return Files.isRegularFile(p) ? Optional.of(p) : Optional.empty();
    }

    /** The folder's tokenizer_config.json (add_bos_token, special tokens, chat template), if present. */
    public Optional<Path> tokenizerConfigJson() {
        Path p = folder.resolve("tokenizer_config.json");
        return Files.isRegularFile(p) ? Optional.of(p) : Optional.empty();
    }

    @Override
    public Optional<Path> hfFolder() {
        return Optional.of(folder);
    }

    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
    }
}
