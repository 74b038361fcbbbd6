package dev.lathe.model;

import dev.lathe.LatheException;
import dev.lathe.tensor.BlockCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * A {@link WeightSource} of seeded random weights for any config (benchmarks and tests of shapes no
 * fixture has): matrices N(0, 0.02^2)-like uniform values stored as {@code type} (F32/F16/BF16 or any
 * registered block type), norm weights around 1. Tensors are made when first asked for and kept in
 * off-heap memory until {@link #close()}.
 */
public final class RandomWeights implements WeightSource {
    private final ModelConfig config;
    private final GgmlType type;
    private final long seed;
    private final Arena arena = Arena.ofShared();
    private final Map<String, long[]> shapes = new LinkedHashMap<>();
    private final Map<String, Tensor> made = new LinkedHashMap<>();

    public RandomWeights(ModelConfig config, GgmlType type, long seed) {
        this.config = config.validate(path());
        if (!BlockCodecs.supports(type)) throw new LatheException("tensor type " + type + " is not supported");
        if (config.dim() % type.blockSize != 0 || config.ffnDim() % type.blockSize != 0 || config.qDim() % type.blockSize != 0) {
            throw new LatheException("dimensions of " + config + " are not multiples of the " + type + " block size");
        }
        this.type = type;
        this.seed = seed;
        int d = config.dim();
        shapes.put(TensorNames.TOKEN_EMBD, new long[]{config.vocabSize(), d});
        for (int l = 0; l < config.nLayers(); l++) {
            shapes.put(TensorNames.layer(l, "attn_norm.weight"), new long[]{d});
            shapes.put(TensorNames.layer(l, "attn_q.weight"), new long[]{config.qDim(), d});
            shapes.put(TensorNames.layer(l, "attn_k.weight"), new long[]{config.kvDim(), d});
            shapes.put(TensorNames.layer(l, "attn_v.weight"), new long[]{config.kvDim(), d});
            if (config.qkvBias()) {
                shapes.put(TensorNames.layer(l, "attn_q.bias"), new long[]{config.qDim()});
                shapes.put(TensorNames.layer(l, "attn_k.bias"), new long[]{config.kvDim()});
                shapes.put(TensorNames.layer(l, "attn_v.bias"), new long[]{config.kvDim()});
            }
            shapes.put(TensorNames.layer(l, "attn_output.weight"), new long[]{d, config.qDim()});
            shapes.put(TensorNames.layer(l, "ffn_norm.weight"), new long[]{d});
            shapes.put(TensorNames.layer(l, "ffn_gate.weight"), new long[]{config.ffnDim(), d});
            shapes.put(TensorNames.layer(l, "ffn_up.weight"), new long[]{config.ffnDim(), d});
            shapes.put(TensorNames.layer(l, "ffn_down.weight"), new long[]{d, config.ffnDim()});
        }
        shapes.put(TensorNames.OUTPUT_NORM, new long[]{d});
        if (!config.tiedEmbeddings()) shapes.put(TensorNames.OUTPUT, new long[]{config.vocabSize(), d});
    }

    /** Shapes of well-known models, for benchmarks: tinyllama-1.1b, llama2-7b, llama3-8b, qwen2-0.5b. */
    public static ModelConfig preset(String name) {
        return switch (name) {
            case "tinyllama-1.1b" -> new ModelConfig("llama", 2048, 22, 32, 4, 64, 5632, 32000, 1e-5f, 10000f, RopeStyle.INTERLEAVED, null, 2048, false, false);
            case "llama2-7b" -> new ModelConfig("llama", 4096, 32, 32, 32, 128, 11008, 32000, 1e-5f, 10000f, RopeStyle.INTERLEAVED, null, 4096, false, false);
            case "llama3-8b" -> new ModelConfig("llama", 4096, 32, 32, 8, 128, 14336, 128256, 1e-5f, 500000f, RopeStyle.INTERLEAVED,
                    new RopeScaling(8f, 1f, 4f, 8192), 8192, false, false);
            case "qwen2-0.5b" -> new ModelConfig("qwen2", 896, 24, 14, 2, 64, 4864, 151936, 1e-6f, 1000000f, RopeStyle.HALF, null, 32768, true, true);
            default -> throw new LatheException("unknown model preset '" + name + "' (tinyllama-1.1b, llama2-7b, llama3-8b, qwen2-0.5b)");
        };
    }

    @Override
    public Path path() {
        return Path.of("random-" + seed);
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public Set<String> tensorNames() {
        return shapes.keySet();
    }

    @Override
    public synchronized Tensor tensor(String name) {
        Tensor t = made.get(name);
        if (t != null) return t;
        long[] shape = shapes.get(name);
        if (shape == null) throw new LatheException(path(), "missing tensor '" + name + "'");
        SplittableRandom r = new SplittableRandom(seed ^ (name.hashCode() * 0x9E3779B97F4A7C15L));
        boolean vector = shape.length == 1;
        GgmlType t0 = vector ? GgmlType.F32 : type;
        BlockCodec c = BlockCodecs.get(t0);
        int cols = (int) shape[shape.length - 1];
        long rows = vector ? 1 : shape[0];
        long rowBytes = t0.bytesFor(cols);
        MemorySegment seg = arena.allocate(rowBytes * rows, 64);
        float[] row = new float[cols];
        boolean norm = name.endsWith("norm.weight");
        for (long i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                double u = r.nextDouble() * 2 - 1;
                row[j] = (float) (norm ? 1 + 0.1 * u : 0.035 * u);
            }
            c.quantize(row, 0, cols, null, seg, i * rowBytes);
        }
        t = new Tensor(name, t0, shape, seg);
        made.put(name, t);
        return t;
    }

    @Override
    public synchronized void close() {
        made.clear();
        arena.close();
    }
}
