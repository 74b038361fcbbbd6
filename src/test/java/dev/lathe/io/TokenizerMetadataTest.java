package dev.lathe.io;

import dev.lathe.Fixtures;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.io.hf.HfFolderWriter;
import dev.lathe.model.RopeStyle;
import dev.lathe.tensor.GgmlType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.assertj.core.api.Assertions.assertThat;

class TokenizerMetadataTest {
    @TempDir
    Path tmp;

    @Test
    void sentencePieceStyleBpeWithByteFallbackGivesTheLlamaVocabulary() throws IOException {
        Path hf = Files.createDirectories(tmp.resolve("hf"));
        Files.createSymbolicLink(hf.resolve("config.json"), Fixtures.fixture("tiny-llama/hf/config.json"));
        Files.createSymbolicLink(hf.resolve("model.safetensors"), Fixtures.fixture("tiny-llama/hf/model.safetensors"));
        StringBuilder vocab = new StringBuilder("{\"<unk>\":0,\"<s>\":1,\"</s>\":2");
        for (int b = 0; b < 256; b++) vocab.append(String.format(",\"<0x%02X>\":%d", b, b + 3));
        vocab.append('}');
        Files.writeString(hf.resolve("tokenizer.json"), """
                {"version":"1.0","added_tokens":[
                  {"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}],
                 "decoder":{"type":"Sequence","decoders":[]},
                 "model":{"type":"BPE","byte_fallback":true,"vocab":%s,"merges":[]}}
                """.formatted(vocab));
        Files.writeString(hf.resolve("tokenizer_config.json"), """
                {"add_bos_token":true,"add_eos_token":false,"bos_token":"<s>","eos_token":"</s>","unk_token":"<unk>",
                 "chat_template":"{{ messages }}"}
                """);
        Path out = tmp.resolve("t.gguf");
        Converter.toGguf(hf, out, GgmlType.F32, Progress.NONE);
        try (GgufFile g = GgufFile.open(out); GgufFile ref = GgufFile.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            assertThat(g.getString("tokenizer.ggml.model", null)).isEqualTo("llama");
            assertThat(g.getString("tokenizer.ggml.pre", null)).isEqualTo("default");
            assertThat(g.getArray("tokenizer.ggml.tokens", String[].class)).containsExactly(ref.getArray("tokenizer.ggml.tokens", String[].class));
            int[] types = g.getArray("tokenizer.ggml.token_type", int[].class);
            assertThat(Arrays.copyOf(types, 4)).containsExactly(3, 3, 3, 6); // LlamaHfVocab: special -> CONTROL, <0xXX> -> BYTE
            assertThat(Arrays.stream(types).skip(3)).allMatch(t -> t == 6);
            assertThat(g.getArray("tokenizer.ggml.scores", float[].class)).hasSize(259).containsOnly(-1000f);
            assertThat(g.getLong("tokenizer.ggml.bos_token_id", -1)).isEqualTo(1);
            assertThat(g.getLong("tokenizer.ggml.eos_token_id", -1)).isEqualTo(2);
            assertThat(g.getLong("tokenizer.ggml.unknown_token_id", -1)).isEqualTo(0);
            assertThat(g.getBool("tokenizer.ggml.add_bos_token", false)).isTrue();
            assertThat(g.getBool("tokenizer.ggml.add_eos_token", true)).isFalse();
            assertThat(g.getString("tokenizer.chat_template", null)).isEqualTo("{{ messages }}");
            assertThat(g.get("tokenizer.ggml.merges")).isNull();
        }
        // the tokenizer files pass through a conversion to HF
        Path back = tmp.resolve("back");
        Converter.toHf(hf, back, GgmlType.F32, Progress.NONE);
        assertThat(Files.mismatch(back.resolve("tokenizer.json"), hf.resolve("tokenizer.json"))).isEqualTo(-1L);
        assertThat(Files.mismatch(back.resolve("tokenizer_config.json"), hf.resolve("tokenizer_config.json"))).isEqualTo(-1L);
    }

    @Test
    void byteLevelBpeGivesGpt2TokensTypesAndMerges() throws IOException {
        TinyModel m = new TinyModel(tmp.resolve("m"), TinyModel.config("qwen2", RopeStyle.HALF, true, true), 3);
        Path hf = tmp.resolve("hf");
        Converter.toHf(m, hf, GgmlType.F32, HfFolderWriter.DEFAULT_MAX_SHARD_BYTES, Progress.NONE);
        Files.writeString(hf.resolve("tokenizer.json"), """
                {"added_tokens":[{"id":5,"content":"<|end|>","special":true},{"id":6,"content":"▁hi","special":false}],
                 "decoder":{"type":"ByteLevel"},
                 "model":{"type":"BPE","byte_fallback":false,"vocab":{"a":0,"b":1,"ab":2,"Ġ":3},"merges":[["a","b"],["Ġ","a b"]]}}
                """);
        Files.writeString(hf.resolve("tokenizer_config.json"), "{\"eos_token\":\"<|end|>\",\"add_bos_token\":false}");
        Path out = tmp.resolve("q.gguf");
        Converter.toGguf(hf, out, GgmlType.F32, Progress.NONE);
        try (GgufFile g = GgufFile.open(out)) {
            assertThat(g.getString("tokenizer.ggml.model", null)).isEqualTo("gpt2");
            assertThat(g.getString("tokenizer.ggml.pre", null)).isEqualTo("qwen2");
            String[] tokens = g.getArray("tokenizer.ggml.tokens", String[].class);
            assertThat(tokens).hasSize(24);
            assertThat(Arrays.copyOf(tokens, 8)).containsExactly("a", "b", "ab", "Ġ", "[PAD4]", "<|end|>", " hi", "[PAD7]");
            assertThat(Arrays.copyOf(g.getArray("tokenizer.ggml.token_type", int[].class), 8)).containsExactly(1, 1, 1, 1, 5, 3, 4, 5);
            assertThat(g.getArray("tokenizer.ggml.merges", String[].class)).containsExactly("a b", "Ġ a\u0120b");
            assertThat(g.getLong("tokenizer.ggml.eos_token_id", -1)).isEqualTo(5);
            assertThat(g.getBool("tokenizer.ggml.add_bos_token", true)).isFalse();
            assertThat(g.get("tokenizer.ggml.scores")).isNull();
        }
    }
}
