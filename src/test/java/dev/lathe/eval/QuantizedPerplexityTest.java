package dev.lathe.eval;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lathe.Fixtures;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.Linear;
import dev.lathe.model.QuantLinear;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.util.HashSet;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Perplexity of llama.cpp's quantized tiny-llama GGUFs. Runs only for files whose tensor types all have a
 * registered codec (the codecs live in another package); otherwise the case is skipped with a message.
 * With llama.cpp's activation quantization the PPL (all 161 chunks) must match llama-perplexity with an F32
 * KV cache to 1e-4 (measured with the quant branch's codecs: 2e-6 .. 1e-5); on the float path it must match
 * PyTorch on the dequantized weights to 1e-5. (Over only 16 chunks the gap is up to 1.5e-4: single
 * rounding flips of quantized activations do not average out.) All 14 files run (about 15 s of CPU each);
 * {@code -Dlathe.quickQuant=true} keeps one file per activation type for a quick local run.
 */
class QuantizedPerplexityTest {
    /** One file per activation type (Q8_0, Q8_1, Q8_K), for {@code -Dlathe.quickQuant=true}. */
    static final Set<String> QUICK = Set.of("Q8_0", "Q4_1", "Q4_K_S");

    @ParameterizedTest
    @ValueSource(strings = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q4_K_S", "Q5_K_S", "Q6_K", "IQ4_NL",
            "Q4_K_M", "Q4_K_S-imatrix", "Q2_K-imatrix"})
    void matchesLlamaCpp(String variant) throws IOException {
        Assumptions.assumeTrue(QUICK.contains(variant) || !Boolean.getBoolean("lathe.quickQuant"),
                variant + ": skipped by -Dlathe.quickQuant=true");
        JsonNode res = PerplexityTest.pplJson().path("results").path(variant);
        assertThat(res.isObject()).as("perplexity.json entry for " + variant).isTrue();
        Set<GgmlType> types = new HashSet<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = res.path("tensor_types").fields(); it.hasNext(); ) {
            types.add(GgmlType.valueOf(it.next().getValue().asText()));
        }
        for (GgmlType t : types) {
            Assumptions.assumeTrue(BlockCodecs.supports(t), "codec for " + t + " not available yet, skipping " + variant);
        }
        int[] ids = PerplexityTest.mobyIds();
        try (GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/" + res.path("file").asText()))) {
            LlamaModel m = LlamaModel.load(src);
            boolean quantizedActivations = true;
            for (int l = 0; l < m.config().nLayers(); l++) {
                for (Linear lin : new Linear[]{m.layer(l).wq(), m.layer(l).wk(), m.layer(l).wv(), m.layer(l).wo(),
                        m.layer(l).gate(), m.layer(l).up(), m.layer(l).down(), m.output()}) {
                    assertThat(lin).isInstanceOf(QuantLinear.class);
                    quantizedActivations &= ((QuantLinear) lin).usesQuantizedActivations();
                }
            }
            if (quantizedActivations) {
                Perplexity.Result r = Perplexity.compute(m, ids, Perplexity.Options.llamaCpp(128, 1));
                double llamaCpp = res.path("ppl_f32_kv_cache").asDouble();
                assertThat(Math.abs(r.ppl() / llamaCpp - 1)).as(variant + ": PPL %s vs llama.cpp %s", r.ppl(), llamaCpp).isLessThan(1e-4);
            } else {
                Perplexity.Result r = Perplexity.compute(m, ids, Perplexity.Options.llamaCpp(128, 1));
                double torch = res.path("pytorch_ppl_dequantized_weights").asDouble();
                assertThat(Math.abs(r.ppl() / torch - 1)).as(variant + ": PPL %s vs PyTorch dequantized %s", r.ppl(), torch).isLessThan(1e-5);
            }
        }
    }

    @org.junit.jupiter.api.Test
    void floatActivationPathMatchesPytorchOnDequantizedWeights() throws IOException {
        Assumptions.assumeTrue(BlockCodecs.supports(GgmlType.Q8_0), "codec for Q8_0 not available yet, skipping");
        JsonNode res = PerplexityTest.pplJson().path("results").path("Q8_0");
        int[] ids = PerplexityTest.mobyIds();
        try (GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-Q8_0.gguf"))) {
            LlamaModel m = LlamaModel.load(src, dev.lathe.model.Parallel.common(), (t, pool) -> {
                Linear l = dev.lathe.model.Linears.of(t, pool);
                return l instanceof QuantLinear q ? q.quantizedActivations(false) : l;
            });
            assertThat(((QuantLinear) m.layer(0).wq()).usesQuantizedActivations()).isFalse();
            Perplexity.Result r = Perplexity.compute(m, ids, Perplexity.Options.llamaCpp(128, 1));
            double torch = res.path("pytorch_ppl_dequantized_weights").asDouble();
            double llamaCpp = res.path("ppl_f32_kv_cache").asDouble();
            assertThat(Math.abs(r.ppl() / torch - 1)).as("PPL %s vs PyTorch dequantized %s", r.ppl(), torch).isLessThan(1e-5);
            // and this path is measurably not llama.cpp's
            assertThat(Math.abs(r.ppl() / llamaCpp - 1)).isGreaterThan(1e-4);
        }
    }
}
