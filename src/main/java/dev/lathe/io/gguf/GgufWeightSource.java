package dev.lathe.io.gguf;

import dev.lathe.LatheException;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.Tensor;

import java.nio.file.Path;
import java.util.Optional;
import java.util.Set;

/** A GGUF file of arch llama, mistral or qwen2 as a {@link WeightSource}. */
public final class GgufWeightSource implements WeightSource {
    private final GgufFile file;
    private final ModelConfig config;

    public GgufWeightSource(GgufFile file) {
        this.file = file;
        try {
            this.config = readConfig(file);
        } catch (RuntimeException e) {
            file.close();
            throw e;
        }
    }

    public static GgufWeightSource open(Path path) {
        return new GgufWeightSource(GgufFile.open(path));
    }

    static ModelConfig readConfig(GgufFile f) {
        Path p = f.path();
        String arch = f.getString("general.architecture", null);
        if (arch == null) throw new LatheException(p, "missing metadata 'general.architecture'");
        if (!arch.equals("llama") && !arch.equals("mistral") && !arch.equals("qwen2")) {
            throw new LatheException(p, "unsupported architecture '" + arch + "' (llama, mistral, qwen2 are supported)");
        }
        int dim = intKey(f, arch + ".embedding_length");
        int layers = intKey(f, arch + ".block_count");
        int heads = intKey(f, arch + ".attention.head_count");
        int kvHeads = (int) f.getLong(arch + ".attention.head_count_kv", heads);
        int headDim = (int) f.getLong(arch + ".attention.key_length", heads > 0 ? dim / heads : 0);
        int ffn = intKey(f, arch + ".feed_forward_length");
        float eps = (float) f.getDouble(arch + ".attention.layer_norm_rms_epsilon", 1e-5);
        float theta = (float) f.getDouble(arch + ".rope.freq_base", 10000.0);
        int ctx = (int) f.getLong(arch + ".context_length", 2048);
        if (!f.hasTensor(TensorNames.TOKEN_EMBD)) throw new LatheException(p, "missing tensor '" + TensorNames.TOKEN_EMBD + "'");
        long[] embShape = f.tensorInfos().get(TensorNames.TOKEN_EMBD).shape();
        int vocab = (int) f.getLong(arch + ".vocab_size", embShape[0]);
        boolean tied = !f.hasTensor(TensorNames.OUTPUT);
        boolean bias = f.hasTensor("blk.0.attn_q.bias");
        RopeStyle style = arch.equals("qwen2") ? RopeStyle.HALF : RopeStyle.INTERLEAVED;
        return new ModelConfig(arch, dim, layers, heads, kvHeads, headDim, ffn, vocab, eps, theta, style, null, ctx, tied, bias).validate(p);
    }

    private static int intKey(GgufFile f, String key) {
        long v = f.requireLong(key);
        if (v <= 0 || v > Integer.MAX_VALUE) throw new LatheException(f.path(), "metadata '" + key + "' has impossible value " + v);
        return (int) v;
    }

    public GgufFile file() {
        return file;
    }

    @Override
    public Path path() {
        return file.path();
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public Set<String> tensorNames() {
        return file.tensorInfos().keySet();
    }

    @Override
    public Tensor tensor(String canonicalName) {
        return file.tensor(canonicalName);
    }

    @Override
    public Optional<GgufFile> gguf() {
        return Optional.of(file);
    }

    @Override
    public void close() {
        file.close();
    }
}
