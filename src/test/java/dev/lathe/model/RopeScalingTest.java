package dev.lathe.model;

import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

class RopeScalingTest {
    static final RopeScaling LLAMA3 = new RopeScaling(8f, 1f, 4f, 64);

    static ModelConfig config(RopeScaling s) {
        // head size 64 and a small original context so that all three frequency bands occur
        return new ModelConfig("llama", 128, 2, 2, 1, 64, 256, 100, 1e-5f, 500000f, RopeStyle.INTERLEAVED, s, 256, false, false);
    }

    /** HF transformers' _compute_llama3_parameters, written out independently. */
    static double[] hfLlama3(double theta, int d, RopeScaling r) {
        double[] inv = new double[d / 2];
        for (int i = 0; i < d / 2; i++) {
            double f = 1.0 / Math.pow(theta, (2.0 * i) / d);
            double wavelen = 2 * Math.PI / f;
            double lowWavelen = r.originalContextLength() / r.lowFreqFactor();
            double highWavelen = r.originalContextLength() / r.highFreqFactor();
            if (wavelen > lowWavelen) f = f / r.factor();
            else if (wavelen >= highWavelen) {
                double smooth = (r.originalContextLength() / wavelen - r.lowFreqFactor()) / (r.highFreqFactor() - r.lowFreqFactor());
                f = (1 - smooth) * f / r.factor() + smooth * f;
            }
            inv[i] = f;
        }
        return inv;
    }

    @Test
    void llama3FrequenciesFollowHf() {
        try (RandomWeights w = new RandomWeights(config(LLAMA3), GgmlType.F32, 5)) {
            double[] got = LlamaModel.ropeFrequencies(w, w.config());
            double[] want = hfLlama3(500000, 64, LLAMA3);
            int scaled = 0, kept = 0, smooth = 0;
            for (int i = 0; i < 32; i++) {
                assertThat(got[i]).isCloseTo(want[i], org.assertj.core.api.Assertions.within(1e-15 + 1e-12 * want[i]));
                double plain = Math.pow(500000, -2.0 * i / 64);
                if (got[i] == plain) kept++;
                else if (Math.abs(got[i] - plain / 8) < 1e-18) scaled++;
                else smooth++;
            }
            assertThat(kept).isPositive();
            assertThat(scaled).isPositive();
            assertThat(smooth).isPositive();
        }
    }

    @Test
    void ggufRopeFreqsTensorGivesTheSameModelAsTheConfigScaling() {
        try (RandomWeights scaledCfg = new RandomWeights(config(LLAMA3), GgmlType.F32, 9);
             RandomWeights plainCfg = new RandomWeights(config(null), GgmlType.F32, 9)) {
            double[] want = hfLlama3(500000, 64, LLAMA3);
            float[] factors = new float[32];
            for (int i = 0; i < 32; i++) factors[i] = (float) (Math.pow(500000, -2.0 * i / 64) / want[i]);
            Tensor freqs = TensorOps.ofFloats("rope_freqs.weight", new long[]{32}, factors);
            WeightSource withTensor = new WeightSource() {
                public Path path() { return plainCfg.path(); }
                public ModelConfig config() { return plainCfg.config(); }
                public Set<String> tensorNames() {
                    Set<String> s = new LinkedHashSet<>(plainCfg.tensorNames());
                    s.add("rope_freqs.weight");
                    return s;
                }
                public Tensor tensor(String n) { return n.equals("rope_freqs.weight") ? freqs : plainCfg.tensor(n); }
                public void close() {}
            };
            int[] tokens = new int[40];
            for (int i = 0; i < tokens.length; i++) tokens[i] = (i * 37 + 11) % 100;
            float[] a = run(LlamaModel.load(scaledCfg), tokens);
            float[] b = run(LlamaModel.load(withTensor), tokens);
            float[] c = run(LlamaModel.load(plainCfg), tokens);
            assertThat(LlamaModelTest.maxAbsDiff(a, b)).isLessThan(1e-5);
            assertThat(LlamaModelTest.maxAbsDiff(a, c)).isGreaterThan(1e-4); // the scaling matters
        }
    }

    static float[] run(LlamaModel m, int[] tokens) {
        return m.forward(m.newSession(tokens.length), tokens, 0, tokens.length, true);
    }
}
