package dev.lathe.eval;

import dev.lathe.Fixtures;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.model.LlamaModel;
import org.junit.jupiter.api.Test;

import java.io.IOException;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class KlDivergenceTest {

    @Test
    void modelAgainstItselfIsZeroAndAgainstBf16SmallPositive() throws IOException {
        int[] ids = PerplexityTest.mobyIds();
        Perplexity.Options o = new Perplexity.Options(128, 1, -1, 6);
        try (GgufWeightSource f32 = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"));
             HfWeightSource bf16 = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf/model.bf16.safetensors"))) {
            LlamaModel ref = LlamaModel.load(f32);
            KlDivergence.Result self = KlDivergence.compute(ref, ref, ids, o);
            assertThat(self.count()).isEqualTo(6 * 63);
            assertThat(self.mean()).isEqualTo(0.0);
            assertThat(self.max()).isEqualTo(0.0);
            assertThat(self.sameTop()).isEqualTo(1.0);
            assertThat(self.pplRatio()).isEqualTo(1.0);
            assertThat(self.pplRef()).isCloseTo(Perplexity.compute(ref, ids, o).ppl(), within(1e-5)); // double vs llama.cpp float log-softmax

            LlamaModel low = LlamaModel.load(bf16);
            int[] calls = {0};
            KlDivergence.Result r = KlDivergence.compute(ref, low, ids, o, (d, t, run, eta) -> calls[0]++);
            assertThat(calls[0]).isEqualTo(6);
            assertThat(r.mean()).isGreaterThan(1e-7).isLessThan(1e-3);
            assertThat(r.median()).isGreaterThan(0).isLessThanOrEqualTo(r.p99());
            assertThat(r.p99()).isLessThanOrEqualTo(r.max());
            assertThat(r.sameTop()).isGreaterThan(0.8).isLessThanOrEqualTo(1.0);
            assertThat(Math.abs(r.pplRatio() - 1)).isLessThan(0.01).isGreaterThan(0);
            assertThat(r.perToken()).hasSize(6 * 63);
            assertThat(java.util.Arrays.stream(r.perToken()).min().orElseThrow()).isGreaterThanOrEqualTo(0);
        }
    }

    @Test
    void percentileInterpolates() {
        double[] s = {0, 1, 2, 3, 4};
        assertThat(KlDivergence.percentile(s, 0.5)).isEqualTo(2.0);
        assertThat(KlDivergence.percentile(s, 0.99)).isCloseTo(3.96, within(1e-12));
        assertThat(KlDivergence.percentile(s, 1.0)).isEqualTo(4.0);
    }
}
