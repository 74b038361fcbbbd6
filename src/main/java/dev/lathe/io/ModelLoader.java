package dev.lathe.io;

import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.io.llama2c.Llama2cWeightSource;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.Tensor;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Opens any supported checkpoint by looking at its content, not its name: a GGUF file (magic), a Hugging
 * Face folder (config.json + model.safetensors or index) or a safetensors file with config.json beside
 * it (header), or a llama2.c checkpoint (a plausible header whose implied size equals the file size).
 * Every opened source is checked against its config: every expected tensor present with the right shape.
 */
public final class ModelLoader {
    private ModelLoader() {}

    /** What {@link #detect(Path)} found. */
    public enum Format { GGUF, HF, LLAMA2C }

    public static Format detect(Path path) {
        if (!Files.exists(path)) throw new LatheException(path, "no such file or folder");
        if (Files.isDirectory(path)) {
            if (!Files.isRegularFile(path.resolve("config.json"))) {
                throw new LatheException(path, "folder is not a Hugging Face model: no config.json");
            }
            if (!Files.isRegularFile(path.resolve("model.safetensors")) && !Files.isRegularFile(path.resolve("model.safetensors.index.json"))) {
                throw new LatheException(path, "folder is not a Hugging Face model: no model.safetensors or model.safetensors.index.json");
            }
            return Format.HF;
        }
        if (!Files.isRegularFile(path)) throw new LatheException(path, "not a regular file");
        if (GgufFile.looksLikeGguf(path)) return Format.GGUF;
        if (SafetensorsFile.looksLikeSafetensors(path)) {
            Path parent = path.toAbsolutePath().getParent();
            if (parent == null || !Files.isRegularFile(parent.resolve("config.json"))) {
                throw new LatheException(path, "a safetensors file needs a config.json in the same folder to be loaded as a model");
            }
            return Format.HF;
        }
        if (Llama2cWeightSource.looksLikeLlama2c(path)) return Format.LLAMA2C;
        if (Llama2cWeightSource.isVersionedExport(path)) {
            throw new LatheException(path, "llama2.c versioned export (magic \"ak42\") is not supported; export with --version 0 (legacy format)");
        }
        throw new LatheException(path, "unrecognised model format (not GGUF, not safetensors, not a llama2.c checkpoint whose size matches its header)");
    }

    /** Opens a checkpoint of any supported format and checks its tensors against its config. */
    public static WeightSource open(Path path) {
        WeightSource s = switch (detect(path)) {
            case GGUF -> GgufWeightSource.open(path);
            case HF -> HfWeightSource.open(path);
            case LLAMA2C -> Llama2cWeightSource.open(path);
        };
        try {
            checkTensors(s);
            return s;
        } catch (RuntimeException e) {
            s.close();
            throw e;
        }
    }

    /** Canonical name -> row-major shape of every tensor a model with this config needs, in canonical order. */
    public static Map<String, long[]> expectedShapes(ModelConfig c) {
        Map<String, long[]> m = new LinkedHashMap<>();
        long dim = c.dim(), q = c.qDim(), kv = c.kvDim(), ffn = c.ffnDim(), vocab = c.vocabSize();
        m.put(TensorNames.TOKEN_EMBD, new long[]{vocab, dim});
        for (int l = 0; l < c.nLayers(); l++) {
            m.put(TensorNames.layer(l, "attn_norm.weight"), new long[]{dim});
            m.put(TensorNames.layer(l, "attn_q.weight"), new long[]{q, dim});
            if (c.qkvBias()) m.put(TensorNames.layer(l, "attn_q.bias"), new long[]{q});
            m.put(TensorNames.layer(l, "attn_k.weight"), new long[]{kv, dim});
            if (c.qkvBias()) m.put(TensorNames.layer(l, "attn_k.bias"), new long[]{kv});
            m.put(TensorNames.layer(l, "attn_v.weight"), new long[]{kv, dim});
            if (c.qkvBias()) m.put(TensorNames.layer(l, "attn_v.bias"), new long[]{kv});
            m.put(TensorNames.layer(l, "attn_output.weight"), new long[]{dim, q});
            m.put(TensorNames.layer(l, "ffn_norm.weight"), new long[]{dim});
            m.put(TensorNames.layer(l, "ffn_gate.weight"), new long[]{ffn, dim});
            m.put(TensorNames.layer(l, "ffn_up.weight"), new long[]{ffn, dim});
            m.put(TensorNames.layer(l, "ffn_down.weight"), new long[]{dim, ffn});
        }
        m.put(TensorNames.OUTPUT_NORM, new long[]{dim});
        if (!c.tiedEmbeddings()) m.put(TensorNames.OUTPUT, new long[]{vocab, dim});
        return m;
    }

    /**
     * Throws a LatheException naming the source's file and listing every missing or mis-shaped tensor
     * (up to 10) if the source does not hold what its config needs.
     */
    public static void checkTensors(WeightSource s) {
        List<String> problems = new ArrayList<>();
        for (Map.Entry<String, long[]> e : expectedShapes(s.config()).entrySet()) {
            String name = e.getKey();
            String shown = "'" + name + "'";
            if (s.hfFolder().isPresent() && TensorNames.ggufToHf(name) != null) shown = "'" + TensorNames.ggufToHf(name) + "' ('" + name + "')";
            if (!s.has(name)) {
                problems.add("missing tensor " + shown);
                continue;
            }
            long[] shape = s.shape(name);
            if (!Arrays.equals(shape, e.getValue())) {
                problems.add("tensor " + shown + " has shape " + Arrays.toString(shape) + " but the config needs " + Arrays.toString(e.getValue()));
            }
        }
        if (!problems.isEmpty()) {
            String msg = problems.size() > 10 ? String.join("; ", problems.subList(0, 10)) + "; and " + (problems.size() - 10) + " more" : String.join("; ", problems);
            throw new LatheException(s.path(), msg);
        }
    }
}
