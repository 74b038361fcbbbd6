package dev.lathe.model;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.tensor.TensorOps;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class LlamaModelTest {

    static double maxAbsDiff(float[] a, float[] b) {
        assertThat(a).hasSameSizeAs(b);
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs((double) a[i] - b[i]));
        return m;
    }

    static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    static int argmax(float[] a, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) if (a[off + i] > a[off + best]) best = i;
        return best;
    }

    /** Max abs difference relative to the largest expected magnitude. */
    static double relErr(float[] actual, float[] expected) {
        return maxAbsDiff(actual, expected) / maxAbs(expected);
    }

    /** Runs the whole sequence as one batch and records the residual stream after each layer. */
    static float[] run(WeightSource src, int[] tokens, Map<Integer, float[]> hidden) {
        LlamaModel m = LlamaModel.load(src);
        LlamaModel.Session s = m.newSession(tokens.length);
        int dim = m.config().dim();
        s.setHook((layer, pos, x, rows, d) -> {
            float[] h = hidden.computeIfAbsent(layer, k -> new float[tokens.length * dim]);
            System.arraycopy(x, 0, h, pos * dim, rows * dim);
        });
        return m.forward(s, tokens, 0, tokens.length, true);
    }

    @Test
    void tinyLlamaHfMatchesPytorch() {
        try (SafetensorsFile exp = SafetensorsFile.open(Fixtures.fixture("tiny-llama/expected/forward.safetensors"));
             HfWeightSource src = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            int[] tokens = TensorOps.toInts(exp.tensor("tokens"));
            Map<Integer, float[]> hidden = new HashMap<>();
            float[] logits = run(src, tokens, hidden);
            assertThat(relErr(logits, exp.floats("logits"))).isLessThan(1e-5);
            assertThat(relErr(hidden.get(0), exp.floats("hidden.0"))).isLessThan(1e-5);
            assertThat(relErr(hidden.get(1), exp.floats("hidden.1"))).isLessThan(1e-5);
        }
    }

    @Test
    void stories260kLlama2cMatchesPytorch() {
        try (SafetensorsFile exp = SafetensorsFile.open(Fixtures.fixture("stories260K/expected.safetensors"));
             dev.lathe.model.WeightSource src = dev.lathe.io.ModelLoader.open(Fixtures.fixture("stories260K/stories260K.bin"))) {
            for (String which : new String[]{"", "_random"}) {
                int[] tokens = TensorOps.toInts(exp.tensor("tokens" + which));
                Map<Integer, float[]> hidden = new HashMap<>();
                float[] logits = run(src, tokens, hidden);
                // float32 against a float64 reference; logits reach 14 in magnitude (fixtures README §5)
                assertThat(relErr(logits, exp.floats("logits" + which))).as("logits" + which).isLessThan(1e-5);
                if (which.isEmpty()) {
                    for (int l = 0; l < 5; l++) assertThat(relErr(hidden.get(l), exp.floats("hidden." + l))).as("hidden." + l).isLessThan(1e-5);
                    // the tokens are the model's own greedy continuation
                    for (int i = 0; i + 1 < tokens.length; i++) {
                        assertThat(dev.lathe.model.Sampler.argmax(logits, i * 512, 512)).isEqualTo(tokens[i + 1]);
                    }
                }
            }
        }
    }

    @Test
    void tinyLlamaGgufMatchesPytorch() {
        try (SafetensorsFile exp = SafetensorsFile.open(Fixtures.fixture("tiny-llama/expected/forward.safetensors"));
             GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            assertThat(src.config().ropeStyle()).isEqualTo(RopeStyle.INTERLEAVED);
            int[] tokens = TensorOps.toInts(exp.tensor("tokens"));
            Map<Integer, float[]> hidden = new HashMap<>();
            float[] logits = run(src, tokens, hidden);
            assertThat(relErr(logits, exp.floats("logits"))).isLessThan(1e-5);
            assertThat(relErr(hidden.get(0), exp.floats("hidden.0"))).isLessThan(1e-5);
            assertThat(relErr(hidden.get(1), exp.floats("hidden.1"))).isLessThan(1e-5);
        }
    }

    @Test
    void wrongRopeStyleIsDetectedByTheFixture() {
        // sanity check that the comparison above can fail: HF weights with the GGUF rotation are far off
        try (SafetensorsFile exp = SafetensorsFile.open(Fixtures.fixture("tiny-llama/expected/forward.safetensors"));
             HfWeightSource hf = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            WeightSource wrong = new WeightSource() {
                public java.nio.file.Path path() { return hf.path(); }
                public ModelConfig config() { return hf.config().withRopeStyle(RopeStyle.INTERLEAVED); }
                public java.util.Set<String> tensorNames() { return hf.tensorNames(); }
                public dev.lathe.tensor.Tensor tensor(String n) { return hf.tensor(n); }
                public void close() {}
            };
            int[] tokens = TensorOps.toInts(exp.tensor("tokens"));
            float[] logits = run(wrong, tokens, new HashMap<>());
            assertThat(maxAbsDiff(logits, exp.floats("logits"))).isGreaterThan(0.01);
        }
    }

    @Test
    void bf16WeightsMatchPytorch() {
        try (SafetensorsFile exp = SafetensorsFile.open(Fixtures.fixture("tiny-llama/expected/forward.safetensors"));
             HfWeightSource src = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf/model.bf16.safetensors"))) {
            int[] tokens = TensorOps.toInts(exp.tensor("tokens"));
            LlamaModel m = LlamaModel.load(src);
            assertThat(m.layer(0).wq().typeName()).isEqualTo("BF16");
            float[] logits = m.forward(m.newSession(64), tokens, 0, tokens.length, true);
            assertThat(relErr(logits, exp.floats("logits_bf16"))).isLessThan(1e-4);
            assertThat(maxAbsDiff(logits, exp.floats("logits"))).isGreaterThan(1e-3); // really the BF16 weights
        }
    }

    @Test
    void tinyQwen2MatchesPytorch() {
        try (SafetensorsFile exp = SafetensorsFile.open(Fixtures.fixture("tiny-qwen2/expected/forward.safetensors"));
             HfWeightSource src = HfWeightSource.open(Fixtures.fixture("tiny-qwen2/hf"))) {
            ModelConfig c = src.config();
            assertThat(c.qkvBias()).isTrue();
            assertThat(c.tiedEmbeddings()).isTrue();
            int[] tokens = TensorOps.toInts(exp.tensor("tokens"));
            Map<Integer, float[]> hidden = new HashMap<>();
            float[] logits = run(src, tokens, hidden);
            assertThat(relErr(logits, exp.floats("logits"))).isLessThan(1e-5);
            assertThat(relErr(hidden.get(0), exp.floats("hidden.0"))).isLessThan(1e-5);
            assertThat(relErr(hidden.get(1), exp.floats("hidden.1"))).isLessThan(1e-5);
            LlamaModel m = LlamaModel.load(src);
            assertThat(m.tiedHead()).isTrue();
            long weights = 0;
            for (String n : src.tensorNames()) weights += src.tensor(n).data().byteSize();
            assertThat(m.storageBytes()).isEqualTo(weights);
        }
    }

    @Test
    void tokenByTokenDecodeEqualsBatchedPrefill() {
        try (SafetensorsFile exp = SafetensorsFile.open(Fixtures.fixture("tiny-llama/expected/forward.safetensors"));
             GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            int[] tokens = TensorOps.toInts(exp.tensor("tokens"));
            LlamaModel m = LlamaModel.load(src);
            int v = m.vocabSize();
            float[] batched = m.forward(m.newSession(64), tokens, 0, tokens.length, true);
            LlamaModel.Session s = m.newSession(64);
            float[] stepwise = new float[tokens.length * v];
            for (int i = 0; i < tokens.length; i++) {
                float[] l = m.forward(s, tokens[i]);
                System.arraycopy(l, 0, stepwise, i * v, v);
            }
            assertThat(s.length()).isEqualTo(64);
            // decode and prefill kernels sum in different orders; batches of 2 or more rows agree exactly
            assertThat(relErr(stepwise, batched)).isLessThan(1e-5);
            // mixed: a prefill of 10, then batches of 7 and the rest, with small internal micro-batches
            LlamaModel.Session s2 = m.newSession(64, LlamaModel.KvType.F32, 5);
            float[] a = m.forward(s2, tokens, 0, 10, true);
            float[] b = m.forward(s2, tokens, 10, 7, true);
            float[] c = m.forward(s2, tokens, 17, 47, false);
            assertThat(maxAbsDiff(a, Arrays.copyOfRange(batched, 0, 10 * v))).isZero();
            assertThat(maxAbsDiff(b, Arrays.copyOfRange(batched, 10 * v, 17 * v))).isZero();
            // last-token-only logits: the output head runs on one row (the decode kernel)
            assertThat(relErr(c, Arrays.copyOfRange(batched, 63 * v, 64 * v))).isLessThan(1e-5);
            // truncate and redo the tail
            s2.truncate(40);
            float[] d = m.forward(s2, tokens, 40, 24, false);
            assertThat(maxAbsDiff(d, c)).isZero();
            assertThatThrownBy(() -> m.forward(s2, tokens, 0, 1, false)).isInstanceOf(IllegalArgumentException.class);
        }
    }

    /**
     * Quantized weights: decode (one row: dotQuantized, or the expanded-row kernels of Q4_0/Q8_0 and Q4_K/Q6_K)
     * and prefill (PanelGemm) compute the same quantized arithmetic in different float orders. The orders
     * differ in the last bits, which now and then moves an activation across a Q8 rounding boundary (a step of
     * 1/127 of its block's largest value), so the logits agree to about 1 % of their range here, not to float
     * rounding; a wrong kernel is off by the size of the logits.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"Q4_0", "Q8_0", "Q4_K_M", "Q6_K", "Q2_K", "Q5_K_S", "Q4_1", "IQ4_NL"})
    void quantizedDecodeAgreesWithPrefill(String type) {
        try (SafetensorsFile exp = SafetensorsFile.open(Fixtures.fixture("tiny-llama/expected/forward.safetensors"));
             GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-" + type + ".gguf"))) {
            int[] tokens = TensorOps.toInts(exp.tensor("tokens"));
            LlamaModel m = LlamaModel.load(src);
            int v = m.vocabSize(), n = 24;
            float[] batched = m.forward(m.newSession(64), tokens, 0, n, true);
            LlamaModel.Session s = m.newSession(64);
            float[] stepwise = new float[n * v];
            for (int i = 0; i < n; i++) System.arraycopy(m.forward(s, tokens[i]), 0, stepwise, i * v, v);
            assertThat(relErr(stepwise, batched)).isLessThan(0.03);
            int same = 0;
            for (int i = 0; i < n; i++) {
                if (argmax(stepwise, i * v, v) == argmax(batched, i * v, v)) same++;
            }
            assertThat(same).isGreaterThanOrEqualTo(n - 2);
        }
    }

    @Test
    void customLinearFactoryMakesEveryMatrixLayer() {
        try (SafetensorsFile exp = SafetensorsFile.open(Fixtures.fixture("tiny-llama/expected/forward.safetensors"));
             GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            int[] tokens = TensorOps.toInts(exp.tensor("tokens"));
            java.util.List<String> made = new java.util.ArrayList<>();
            LlamaModel m = LlamaModel.load(src, Parallel.common(), (t, pool) -> {
                made.add(t.name());
                return Linears.of(t, pool);
            });
            assertThat(made).hasSize(2 * 7 + 1).contains("output.weight", "blk.1.ffn_down.weight");
            assertThat(m.tiedHead()).isFalse();
            float[] logits = m.forward(m.newSession(64), tokens, 0, 64, true);
            assertThat(relErr(logits, exp.floats("logits"))).isLessThan(1e-5);
            // a factory returning a wrongly shaped layer is rejected with the file named
            assertThatThrownBy(() -> LlamaModel.load(src, Parallel.common(), (t, pool) -> Linears.of(src.tensor("blk.0.attn_k.weight"), pool)))
                    .isInstanceOf(LatheException.class).hasMessageContaining(src.path().toString());
        }
    }

    @Test
    void f16KvCacheIsCloseToF32() {
        try (SafetensorsFile exp = SafetensorsFile.open(Fixtures.fixture("tiny-llama/expected/forward.safetensors"));
             GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            int[] tokens = TensorOps.toInts(exp.tensor("tokens"));
            LlamaModel m = LlamaModel.load(src);
            float[] f16 = m.forward(m.newSession(64, LlamaModel.KvType.F16), tokens, 0, tokens.length, true);
            double d = maxAbsDiff(f16, exp.floats("logits"));
            assertThat(d).isLessThan(1e-3).isGreaterThan(0);
        }
    }

    @Test
    void badShapesAreRejected() {
        try (HfWeightSource hf = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            WeightSource wrong = new WeightSource() {
                public java.nio.file.Path path() { return hf.path(); }
                public ModelConfig config() { return hf.config(); }
                public java.util.Set<String> tensorNames() { return hf.tensorNames(); }
                public dev.lathe.tensor.Tensor tensor(String n) {
                    return hf.tensor(n.equals("blk.1.attn_k.weight") ? "blk.1.attn_q.weight" : n);
                }
                public void close() {}
            };
            assertThatThrownBy(() -> LlamaModel.load(wrong)).isInstanceOf(LatheException.class)
                    .hasMessageContaining("blk.1.attn_k.weight").hasMessageContaining(hf.path().toString());
        }
    }
}
