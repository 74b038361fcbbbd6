package dev.lathe.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lathe.Fixtures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.assertj.core.api.Assertions.assertThat;

class MainTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    record Run(int code, String out, String err) {
        JsonNode json() {
            try {
                return JSON.readTree(out);
            } catch (Exception e) {
                throw new AssertionError("not JSON: " + out + "\nstderr: " + err, e);
            }
        }
    }

    static Run lathe(Object... args) {
        StringWriter o = new StringWriter(), e = new StringWriter();
        String[] a = Arrays.stream(args).map(String::valueOf).toArray(String[]::new);
        int code = Main.run(a, new PrintWriter(o, true), new PrintWriter(e, true));
        return new Run(code, o.toString(), e.toString());
    }

    @Test
    void everyHelpTextRendersWithoutPicocliWarnings() {
        // a bare % in a description makes picocli print a warning and show the raw text
        java.io.PrintStream old = System.err;
        java.io.ByteArrayOutputStream captured = new java.io.ByteArrayOutputStream();
        System.setErr(new java.io.PrintStream(captured, true));
        try {
            picocli.CommandLine cl = new picocli.CommandLine(new Main());
            assertThat(cl.getSubcommands()).hasSizeGreaterThan(10);
            for (var e : cl.getSubcommands().entrySet()) {
                Run r = lathe(e.getKey(), "--help");
                assertThat(r.code()).as(e.getKey()).isZero();
                assertThat(r.out()).as(e.getKey()).contains("Usage: lathe");
            }
        } finally {
            System.setErr(old);
        }
        assertThat(captured.toString()).doesNotContain("WARN");
    }

    @Test
    void inspectReportsParametersTypesAndBitsPerWeight() {
        Run r = lathe("inspect", Fixtures.fixture("tiny-llama/gguf/tiny-llama-Q4_K_M.gguf"), "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("parameters").asLong()).isEqualTo(1_706_752);
        assertThat(j.get("types").has("Q6_K")).isTrue();
        assertThat(j.get("bits_per_weight").asDouble()).isBetween(4.5, 5.5);
        assertThat(j.get("tensors")).hasSize(21);
    }

    @Test
    void evalMatchesLlamaCppPerplexityOfTheF32Gguf() {
        Run r = lathe("eval", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--text", Fixtures.fixture("text/moby-16k.txt"),
                "--ctx", 128, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("tokens").asInt()).isEqualTo(20608);
        assertThat(j.get("ppl").asDouble()).isCloseTo(250.4749, org.assertj.core.data.Percentage.withPercentage(1e-3));
        // this vocabulary is bytes only: the scored text of each chunk is the byte tokens (id - 3) of positions
        // 65..127, with a space spelled as the three bytes of U+2581
        int[] ids = readIds(Fixtures.fixture("tiny-llama/tokens/moby-16k.ids.i32le.bin"));
        long expected = 0;
        for (int c = 0; c < 161; c++) {
            byte[] span = new byte[63];
            for (int k = 0; k < 63; k++) span[k] = (byte) (ids[c * 128 + 65 + k] - 3);
            expected += 63;
            for (int k = 0; k + 2 < 63; k++) {
                if (span[k] == (byte) 0xE2 && span[k + 1] == (byte) 0x96 && span[k + 2] == (byte) 0x81) {
                    expected -= 2;
                    k += 2;
                }
            }
        }
        assertThat(j.get("scored_bytes").asLong()).isEqualTo(expected).isLessThan(10143);
        assertThat(j.get("bpb").asDouble()).isCloseTo(Math.log(j.get("ppl").asDouble()) / Math.log(2) * 10143 / j.get("scored_bytes").asLong(),
                org.assertj.core.data.Offset.offset(1e-9));
    }

    static int[] readIds(Path p) {
        try {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(Files.readAllBytes(p)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            int[] ids = new int[b.remaining() / 4];
            b.asIntBuffer().get(ids);
            return ids;
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void evalAgainstAReferenceReportsKldAndTopOne() {
        Run r = lathe("eval", Fixtures.fixture("tiny-llama/gguf/tiny-llama-Q4_0.gguf"), "--text", Fixtures.fixture("text/moby-16k.txt"),
                "--ctx", 128, "--chunks", 8, "--reference", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("kld_mean").asDouble()).isPositive().isLessThan(0.1);
        assertThat(j.get("kld_p99").asDouble()).isGreaterThanOrEqualTo(j.get("kld_median").asDouble());
        assertThat(j.get("top1").asDouble()).isBetween(0.5, 1.0);
        assertThat(j.get("ppl_ratio").asDouble()).isCloseTo(j.get("ppl").asDouble() / j.get("ppl_reference").asDouble(), org.assertj.core.data.Offset.offset(1e-9));
    }

    @Test
    void evalOfAFolderEqualsEvalOfItsConcatenatedTextFiles(@TempDir Path tmp) throws Exception {
        String text = Files.readString(Fixtures.fixture("text/moby-16k.txt"));
        Path dir = Files.createDirectories(tmp.resolve("parts/sub"));
        int cut = text.indexOf(' ', text.length() / 2);
        Files.writeString(tmp.resolve("parts/a.txt"), text.substring(0, cut));
        Files.writeString(dir.resolve("b.txt"), text.substring(cut));
        Files.writeString(tmp.resolve("parts/notes.md"), "not read");
        Path model = Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
        JsonNode whole = lathe("eval", model, "--text", Fixtures.fixture("text/moby-16k.txt"), "--ctx", 128, "--chunks", 4, "--json").json();
        JsonNode parts = lathe("eval", model, "--text", tmp.resolve("parts"), "--ctx", 128, "--chunks", 4, "--json").json();
        assertThat(parts.get("tokens").asInt()).isEqualTo(whole.get("tokens").asInt());
        assertThat(parts.get("ppl").asDouble()).isEqualTo(whole.get("ppl").asDouble());
        Files.createDirectories(tmp.resolve("empty"));
        Run r = lathe("eval", model, "--text", tmp.resolve("empty"));
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("empty").contains("no .txt file");
    }

    @Test
    void generateIsDeterministicForASeed() {
        Path m = Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
        Run a = lathe("generate", m, "--prompt", "Call me", "-n", 12, "--temp", 0.9, "--seed", 7, "--json");
        Run b = lathe("generate", m, "--prompt", "Call me", "-n", 12, "--temp", 0.9, "--seed", 7, "--json");
        Run c = lathe("generate", m, "--prompt", "Call me", "-n", 12, "--temp", 0.9, "--seed", 8, "--json");
        assertThat(a.code()).as(a.err()).isZero();
        assertThat(a.json().get("tokens")).isEqualTo(b.json().get("tokens"));
        assertThat(a.json().get("tokens")).isNotEqualTo(c.json().get("tokens"));
        assertThat(a.json().get("decode_tps").asDouble()).isPositive();
    }

    @Test
    void convertHfToGgufAndBack(@TempDir Path tmp) {
        Path gguf = tmp.resolve("m.gguf");
        Run r = lathe("convert", Fixtures.fixture("tiny-llama/hf"), gguf, "--type", "q8_0", "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = lathe("inspect", gguf, "--json").json();
        assertThat(j.get("types").has("Q8_0")).isTrue();
        assertThat(j.get("parameters").asLong()).isEqualTo(1_706_752);
        Run back = lathe("convert", gguf, tmp.resolve("hf"), "--type", "bf16");
        assertThat(back.code()).as(back.err()).isZero();
        assertThat(tmp.resolve("hf/config.json")).exists();
        assertThat(lathe("inspect", tmp.resolve("hf"), "--json").json().get("types").has("BF16")).isTrue();
    }

    @Test
    void benchReportsSpeedAndMemory() {
        Run r = lathe("bench", Fixtures.fixture("tiny-llama/gguf/tiny-llama-Q8_0.gguf"), "-p", 16, "-n", 4, "-r", 2, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("prefill_tps").asDouble()).isPositive();
        assertThat(j.get("decode_tps").asDouble()).isPositive();
        assertThat(j.get("peak_rss_mb").asDouble()).isPositive();
    }

    @Test
    void synthWritesALoadableRandomModelOfAKnownShape(@TempDir Path tmp) {
        Path out = tmp.resolve("s.gguf");
        Run r = lathe("synth", "--preset", "tinyllama-1.1b", "--layers", 1, "--type", "q4_0", "-o", out, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = lathe("inspect", out, "--json").json();
        assertThat(j.get("config").get("dim").asInt()).isEqualTo(2048);
        assertThat(j.get("config").get("nLayers").asInt()).isEqualTo(1);
        assertThat(j.get("types").has("Q4_0")).isTrue();
        Run g = lathe("generate", out, "--prompt", "hello", "-n", 2, "--temp", 0, "--json");
        assertThat(g.code()).as(g.err()).isZero();
        assertThat(g.json().get("tokens")).hasSize(2);
        assertThat(lathe("synth", "--preset", "gpt-9", "-o", tmp.resolve("x.gguf")).code()).isEqualTo(2);
    }

    @Test
    void badInputGivesOneLineAndExitCodeTwo(@TempDir Path tmp) throws Exception {
        Path src = Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
        Path truncated = tmp.resolve("truncated.gguf");
        Files.write(truncated, Arrays.copyOf(Files.readAllBytes(src), 300_000));
        Path magic = tmp.resolve("magic.gguf");
        byte[] b = Files.readAllBytes(src);
        b[0] = 'X';
        Files.write(magic, b);
        Path badJson = tmp.resolve("badhf");
        Files.createDirectories(badJson);
        Files.writeString(badJson.resolve("config.json"), "{\"model_type\": \"llama\", ");
        Files.copy(Fixtures.fixture("tiny-llama/hf/model.safetensors"), badJson.resolve("model.safetensors"));
        for (Object[] args : new Object[][]{
                {"inspect", truncated}, {"inspect", magic}, {"inspect", tmp.resolve("nope.gguf")}, {"inspect", badJson},
                {"eval", src, "--text", tmp.resolve("missing.txt")}, {"generate", src, "--top-p", 2}, {"frobnicate"},
                {"convert", src, tmp.resolve("x.gguf"), "--type", "q3_k"}}) {
            Run r = lathe(args);
            assertThat(r.code()).as(Arrays.toString(args) + " -> " + r.err()).isEqualTo(2);
            assertThat(r.err()).startsWith("lathe: ");
            assertThat(r.err()).doesNotContain("Exception");
        }
        assertThat(lathe("inspect", truncated).err()).contains("truncated.gguf");
        assertThat(tmp.resolve("x.gguf")).doesNotExist();
    }
}
