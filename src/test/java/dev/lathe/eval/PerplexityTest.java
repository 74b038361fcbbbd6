package dev.lathe.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lathe.Fixtures;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.model.LlamaModel;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class PerplexityTest {
    static final int BOS = 1;

    static int[] mobyIds() throws IOException {
        byte[] b = Files.readAllBytes(Fixtures.fixture("tiny-llama/tokens/moby-16k.ids.i32le.bin"));
        int[] ids = new int[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(ids);
        return ids;
    }

    static JsonNode pplJson() throws IOException {
        return new ObjectMapper().readTree(Fixtures.fixture("tiny-llama/gguf/perplexity.json").toFile());
    }

    @Test
    void f32GgufMatchesLlamaCppAndPytorchPerChunk() throws IOException {
        int[] ids = mobyIds();
        assertThat(ids).hasSize(20608);
        JsonNode json = pplJson();
        try (GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            LlamaModel m = LlamaModel.load(src);
            int[] calls = {0};
            Perplexity.Result r = Perplexity.compute(m, ids, Perplexity.Options.llamaCpp(128, BOS), (done, total, ppl, eta) -> {
                calls[0]++;
                assertThat(total).isEqualTo(161);
                assertThat(eta).isGreaterThanOrEqualTo(0);
            });
            assertThat(calls[0]).isEqualTo(161);
            assertThat(r.scoredTokens()).isEqualTo(161 * 63);
            assertThat(r.chunkNll()).hasSize(161);
            double llamaCpp = json.path("results").path("f32").path("ppl_f32_kv_cache").asDouble();
            assertThat(llamaCpp).isEqualTo(250.4749);
            assertThat(Math.abs(r.ppl() / llamaCpp - 1)).isLessThan(1e-5);
            double torch = json.path("pytorch_reference_f32_weights").path("ppl_float64").asDouble();
            assertThat(Math.abs(r.ppl() / torch - 1)).isLessThan(1e-6);
            JsonNode chunks = json.path("pytorch_reference_f32_weights").path("chunk_nll_sum_float64");
            assertThat(chunks.size()).isEqualTo(161);
            double worst = 0;
            for (int c = 0; c < 161; c++) worst = Math.max(worst, Math.abs(r.chunkNll()[c] - chunks.get(c).asDouble()));
            assertThat(worst).isLessThan(1e-3); // sums of 63 NLLs of ~5.5 each: 3e-6 relative
            assertThat(r.runningPpl(161)).isCloseTo(r.ppl(), within(1e-9));
            assertThat(r.totalNll()).isCloseTo(Math.log(r.ppl()) * r.scoredTokens(), within(1e-6));
            long bytes = Files.size(Fixtures.fixture("text/moby-16k.txt"));
            assertThat(r.bitsPerByte(bytes)).isCloseTo(r.totalNll() / Math.log(2) / 15544, within(1e-12));
        }
    }

    @Test
    void hfAndGgufLayoutsGiveTheSamePerplexity() throws IOException {
        int[] ids = mobyIds();
        Perplexity.Options o = new Perplexity.Options(128, BOS, -1, 8);
        try (GgufWeightSource g = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"));
             HfWeightSource h = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            Perplexity.Result a = Perplexity.compute(LlamaModel.load(g), ids, o);
            Perplexity.Result b = Perplexity.compute(LlamaModel.load(h), ids, o);
            assertThat(a.chunkNll()).hasSize(8);
            for (int c = 0; c < 8; c++) assertThat(a.chunkNll()[c]).isCloseTo(b.chunkNll()[c], within(1e-3));
        }
    }

    @Test
    void scoreAllCountsEveryPosition() throws IOException {
        int[] ids = mobyIds();
        try (GgufWeightSource g = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            LlamaModel m = LlamaModel.load(g);
            Perplexity.Result all = Perplexity.compute(m, ids, new Perplexity.Options(64, BOS, 0, 3));
            Perplexity.Result half = Perplexity.compute(m, ids, new Perplexity.Options(64, BOS, -1, 3));
            assertThat(all.scoredTokens()).isEqualTo(3 * 63);
            assertThat(half.scoredTokens()).isEqualTo(3 * 31);
            assertThat(all.totalNll()).isGreaterThan(half.totalNll());
            assertThat(Perplexity.Options.scoreAll(64, BOS).first()).isZero();
            assertThat(Perplexity.Options.llamaCpp(64, BOS).first()).isEqualTo(32);
        }
    }

    @Test
    void nllIsLogSoftmax() {
        float[] logits = {1f, 2f, 3f, -1f};
        double lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(-1));
        assertThat(Perplexity.nll(logits, 0, 4, 2)).isCloseTo(lse - 3, within(1e-6));
        assertThat(Perplexity.nll(new float[]{1000f, 0f}, 0, 2, 1)).isCloseTo(1000, within(1e-3));
    }
}
