package dev.lathe.model;

import dev.lathe.Fixtures;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The llama2.c checkpoint through a minimal test-only reader: tied classifier, interleaved RoPE without a
 * permutation, head size 8 and FFN 172 (shorter than / not a multiple of the vector length, so every scalar
 * tail runs).
 */
class Stories260KTest {

    static WeightSource llama2c(Path file) throws IOException {
        ByteBuffer bb = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        int dim = bb.getInt(), hidden = bb.getInt(), layers = bb.getInt(), heads = bb.getInt(), kvHeads = bb.getInt(),
                vocab = bb.getInt(), seq = bb.getInt();
        int hs = dim / heads, kvDim = kvHeads * hs;
        FloatBuffer fb = bb.slice().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        Map<String, Tensor> t = new LinkedHashMap<>();
        t.put(TensorNames.TOKEN_EMBD, take(fb, TensorNames.TOKEN_EMBD, vocab, dim));
        String[][] perLayer = {{"attn_norm.weight", "1", "" + dim}, {"attn_q.weight", "" + dim, "" + dim}, {"attn_k.weight", "" + kvDim, "" + dim},
                {"attn_v.weight", "" + kvDim, "" + dim}, {"attn_output.weight", "" + dim, "" + dim}, {"ffn_norm.weight", "1", "" + dim},
                {"ffn_gate.weight", "" + hidden, "" + dim}, {"ffn_down.weight", "" + dim, "" + hidden}, {"ffn_up.weight", "" + hidden, "" + dim}};
        for (String[] p : perLayer) {
            for (int l = 0; l < layers; l++) {
                int r = Integer.parseInt(p[1]), c = Integer.parseInt(p[2]);
                String name = TensorNames.layer(l, p[0]);
                t.put(name, r == 1 ? vec(fb, name, c) : take(fb, name, r, c));
            }
        }
        t.put(TensorNames.OUTPUT_NORM, vec(fb, TensorNames.OUTPUT_NORM, dim));
        ModelConfig cfg = new ModelConfig("llama", dim, layers, heads, kvHeads, hs, hidden, vocab, 1e-5f, 10000f,
                RopeStyle.INTERLEAVED, null, seq, true, false);
        return new WeightSource() {
            public Path path() { return file; }
            public ModelConfig config() { return cfg; }
            public Set<String> tensorNames() { return t.keySet(); }
            public Tensor tensor(String n) {
                Tensor x = t.get(n);
                if (x == null) throw new dev.lathe.LatheException(file, "missing tensor '" + n + "'");
                return x;
            }
            public void close() {}
        };
    }

    static Tensor take(FloatBuffer fb, String name, int rows, int cols) {
        float[] v = new float[rows * cols];
        fb.get(v);
        return TensorOps.ofFloats(name, new long[]{rows, cols}, v);
    }

    static Tensor vec(FloatBuffer fb, String name, int n) {
        float[] v = new float[n];
        fb.get(v);
        return TensorOps.ofFloats(name, new long[]{n}, v);
    }

    @Test
    void logitsAndHiddenStatesMatchTheReference() throws IOException {
        try (SafetensorsFile exp = SafetensorsFile.open(Fixtures.fixture("stories260K/expected.safetensors"))) {
            WeightSource src = llama2c(Fixtures.fixture("stories260K/stories260K.bin"));
            LlamaModel m = LlamaModel.load(src);
            assertThat(m.vocabSize()).isEqualTo(512);
            for (String set : new String[]{"", "_random"}) {
                int[] tokens = TensorOps.toInts(exp.tensor("tokens" + set));
                Map<Integer, float[]> hidden = new java.util.HashMap<>();
                float[] logits = LlamaModelTest.run(src, tokens, hidden);
                assertThat(LlamaModelTest.relErr(logits, exp.floats("logits" + set))).as("logits" + set).isLessThan(1e-5); // logits up to 14
                if (set.isEmpty()) {
                    for (int l = 0; l < 5; l++) {
                        assertThat(LlamaModelTest.relErr(hidden.get(l), exp.floats("hidden." + l))).as("hidden." + l).isLessThan(1e-5);
                    }
                    // the expected tokens are the model's own greedy continuation
                    for (int i = 0; i < 31; i++) assertThat(Sampler.argmax(logits, i * 512, 512)).isEqualTo(tokens[i + 1]);
                }
            }
        }
    }
}
