package dev.lathe.io;

import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.TensorNames;
import dev.lathe.model.TensorMapSource;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/** A small random model held in memory (seeded), for writing test files of every format. */
final class TinyModel extends TensorMapSource {

    static ModelConfig config(String arch, RopeStyle style, boolean tied, boolean bias) {
        return new ModelConfig(arch, 16, 2, 2, 1, 8, 32, 24, 1e-5f, 10000f, style, null, 8, tied, bias);
    }

    TinyModel(Path path, ModelConfig config, long seed) {
        super(path, config, random(config, seed), null);
    }

    private static Map<String, Tensor> random(ModelConfig config, long seed) {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        Random r = new Random(seed);
        for (Map.Entry<String, long[]> e : ModelLoader.expectedShapes(config).entrySet()) {
            float[] v = new float[(int) Tensor.numElements(e.getValue())];
            for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian() * (e.getValue().length == 1 ? 0.1f : 0.02f) + (e.getKey().endsWith("norm.weight") ? 1 : 0);
            tensors.put(e.getKey(), TensorOps.ofFloats(e.getKey(), e.getValue(), v));
        }
        return tensors;
    }

    /** Writes the model as a llama2.c v0 checkpoint (config must be INTERLEAVED arch llama without biases). */
    static void writeLlama2c(WeightSource m, Path out) throws IOException {
        ModelConfig c = m.config();
        boolean shared = c.tiedEmbeddings();
        int headSize = c.headDim();
        long floats = 0;
        ByteBuffer b = ByteBuffer.allocate(64 << 20).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(c.dim()).putInt(c.ffnDim()).putInt(c.nLayers()).putInt(c.nHeads()).putInt(c.nKvHeads())
                .putInt(shared ? c.vocabSize() : -c.vocabSize()).putInt(c.contextLength());
        put(b, m, TensorNames.TOKEN_EMBD);
        for (String s : new String[]{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"}) {
            for (int l = 0; l < c.nLayers(); l++) put(b, m, TensorNames.layer(l, s + ".weight"));
        }
        put(b, m, TensorNames.OUTPUT_NORM);
        for (int p = 0; p < c.contextLength(); p++) for (int i = 0; i < headSize / 2; i++) b.putFloat((float) Math.cos(p * Math.pow(10000, -2.0 * i / headSize)));
        for (int p = 0; p < c.contextLength(); p++) for (int i = 0; i < headSize / 2; i++) b.putFloat((float) Math.sin(p * Math.pow(10000, -2.0 * i / headSize)));
        if (!shared) put(b, m, TensorNames.OUTPUT);
        Files.write(out, java.util.Arrays.copyOf(b.array(), b.position()));
    }

    private static void put(ByteBuffer b, WeightSource m, String name) {
        for (float f : TensorOps.toFloats(m.tensor(name))) b.putFloat(f);
    }
}
