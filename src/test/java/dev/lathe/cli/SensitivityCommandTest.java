package dev.lathe.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lathe.Fixtures;
import org.junit.jupiter.api.Test;

import static dev.lathe.cli.MainTest.lathe;
import static org.assertj.core.api.Assertions.assertThat;

class SensitivityCommandTest {
    @Test
    void reportsTheChosenTensorsMostSensitiveFirst() {
        MainTest.Run r = lathe("sensitivity", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--type", "Q4_K_M",
                "--text", Fixtures.fixture("text/moby-16k.txt"), "--ctx", 64, "--chunks", 2,
                "--tensors", "blk.0.attn_q.weight,output.weight", "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("chunks").asInt()).isEqualTo(2);
        JsonNode t = j.get("tensors");
        assertThat(t).hasSize(2);
        assertThat(t.get(0).get("kld_mean").asDouble()).isGreaterThanOrEqualTo(t.get(1).get("kld_mean").asDouble());
        assertThat(t.get(0).get("format").asText()).isEqualTo("Q4_K");
    }

    @Test
    void badInputExitsWithTwoAndOneLine() {
        MainTest.Run bad = lathe("sensitivity", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--type", "Q7_Z",
                "--text", Fixtures.fixture("text/moby-16k.txt"), "--ctx", 64, "--chunks", 1);
        assertThat(bad.code()).isEqualTo(2);
        assertThat(bad.err().strip().lines().count()).isEqualTo(1);
        assertThat(bad.err()).contains("unknown quantization type");
        MainTest.Run ctx = lathe("sensitivity", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--type", "Q4_0",
                "--text", Fixtures.fixture("text/moby-16k.txt"), "--ctx", 100000);
        assertThat(ctx.code()).isEqualTo(2);
        assertThat(ctx.err()).contains("context length");
    }
}
