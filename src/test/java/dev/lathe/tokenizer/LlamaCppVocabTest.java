package dev.lathe.tokenizer;

import dev.lathe.io.gguf.GgufFile;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * llama.cpp's own tokenizer test vectors (models/ggml-vocab-*.gguf with .inp/.out, as used by
 * tests/test-tokenizer-0.cpp: add_special = false, parse_special = false), read in place from the llama.cpp
 * checkout beside the project ({@code -Dlathe.llamacpp=...}, default ../peers/llama.cpp); skipped when absent.
 */
class LlamaCppVocabTest {
    @org.junit.jupiter.api.io.TempDir
    Path tmp;

    static Path models() {
        Path p = Path.of(System.getProperty("lathe.llamacpp", "../peers/llama.cpp")).toAbsolutePath().normalize().resolve("models");
        Assumptions.assumeTrue(Files.isDirectory(p), "llama.cpp checkout absent, skipping: " + p);
        return p;
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-spm", "phi-3", "gpt-2", "mpt", "starcoder", "refact"})
    void matchesLlamaCppTestVectors(String name) throws IOException {
        Path gguf = models().resolve("ggml-vocab-" + name + ".gguf");
        Path inp = models().resolve("ggml-vocab-" + name + ".gguf.inp");
        Path out = models().resolve("ggml-vocab-" + name + ".gguf.out");
        Assumptions.assumeTrue(Files.isRegularFile(gguf) && Files.isRegularFile(inp) && Files.isRegularFile(out), "vocab absent: " + name);
        String raw = Files.readString(inp, StandardCharsets.UTF_8);
        List<String> inputs = new ArrayList<>(Arrays.asList(raw.split("\n__ggml_vocab_test__\n", -1)));
        if (inputs.getLast().isEmpty()) inputs.removeLast();
        List<String> outputs = Files.readAllLines(out, StandardCharsets.UTF_8);
        assertThat(inputs).hasSameSizeAs(outputs);
        try (GgufFile f = GgufFile.open(gguf)) {
            Tokenizer fromGguf = Tokenizers.fromGguf(f).orElseThrow();
            // the same vocabulary carried over to tokenizer.json and read back must give the same ids
            Path dir = tmp.resolve(name);
            Tokenizers.writeHf(fromGguf, dir);
            Tokenizer fromJson = Tokenizers.fromHfFolder(dir);
            for (Tokenizer t : List.of(fromGguf, fromJson))
            for (int i = 0; i < inputs.size(); i++) {
                String o = outputs.get(i).strip();
                int[] expected = o.isEmpty() ? new int[0] : Arrays.stream(o.split(" ")).mapToInt(Integer::parseInt).toArray();
                assertThat(t.encode(inputs.get(i), false, false)).as("%s #%d: '%s'", name, i, inputs.get(i)).containsExactly(expected);
                if (t.vocabulary().isSpm()) {
                    assertThat(t.decode(t.encode(inputs.get(i), true, false))).as("%s #%d round trip", name, i).isEqualTo(inputs.get(i));
                }
            }
        }
    }
}
