package dev.lathe.eval;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.compress.QuantPlan;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.model.Parallel;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class SensitivityTest {
    static final Perplexity.Options O = new Perplexity.Options(128, 1, -1, 2);

    @Test
    void everyQuantizableTensorIsMeasuredAndFewerBitsCostMore() throws IOException {
        int[] ids = PerplexityTest.mobyIds();
        try (GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            List<Sensitivity.Entry> q2 = Sensitivity.run(src, "Q2_K", null, ids, O, Parallel.common(), (d, t, e, eta) -> {});
            assertThat(q2).hasSize(QuantPlan.quantizable(src).size());
            for (int i = 1; i < q2.size(); i++) assertThat(q2.get(i).kldMean()).isLessThanOrEqualTo(q2.get(i - 1).kldMean());
            assertThat(q2).allSatisfy(e -> {
                assertThat(e.kldMean()).isGreaterThan(0);
                assertThat(e.kldP99()).isGreaterThanOrEqualTo(0);
                assertThat(e.top1()).isBetween(0.0, 1.0);
            });
            // a mix name means its base type; Q8_0 of the same tensors costs far less than Q2_K
            List<String> some = List.of("blk.0.ffn_down.weight", "output.weight");
            List<Sensitivity.Entry> q8 = Sensitivity.run(src, "Q8_0", some, ids, O, Parallel.common(), (d, t, e, eta) -> {});
            List<Sensitivity.Entry> q2m = Sensitivity.run(src, "Q2_K_S", some, ids, O, Parallel.common(), (d, t, e, eta) -> {});
            Map<String, Sensitivity.Entry> byName2 = q2.stream().collect(Collectors.toMap(Sensitivity.Entry::tensor, Function.identity()));
            for (Sensitivity.Entry e : q8) {
                assertThat(e.format()).isEqualTo("Q8_0");
                assertThat(e.bitsPerWeight()).isEqualTo(8.5);
                assertThat(e.kldMean()).isLessThan(byName2.get(e.tensor()).kldMean() / 10);
            }
            for (Sensitivity.Entry e : q2m) assertThat(e.kldMean()).isEqualTo(byName2.get(e.tensor()).kldMean());
        }
    }

    @Test
    void unknownTensorOrTooShortTextIsAnError() throws IOException {
        int[] ids = PerplexityTest.mobyIds();
        try (GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            assertThatThrownBy(() -> Sensitivity.run(src, "Q4_0", List.of("blk.0.attn_norm.weight"), ids, O, Parallel.common(), (d, t, e, eta) -> {}))
                    .isInstanceOf(LatheException.class).hasMessageContaining("not quantized");
            assertThatThrownBy(() -> Sensitivity.run(src, "Q4_0", null, new int[10], O, Parallel.common(), (d, t, e, eta) -> {}))
                    .isInstanceOf(LatheException.class).hasMessageContaining("one chunk");
            assertThatThrownBy(() -> Sensitivity.run(src, "Q9_X", null, ids, O, Parallel.common(), (d, t, e, eta) -> {}))
                    .isInstanceOf(LatheException.class).hasMessageContaining("unknown quantization type");
        }
    }
}
