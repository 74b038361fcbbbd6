package dev.lathe.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.io.gguf.GgufValue;
import dev.lathe.io.gguf.GgufValueType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class TokenizerIoTest {
    @TempDir
    Path tmp;

    private static Tokenizer fixture() {
        return Tokenizers.fromGguf(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf")).orElseThrow();
    }

    @Test
    void ggufMetadataEqualsTheFixtureFile() {
        Tokenizer t = fixture();
        Map<String, GgufValue> written = Tokenizers.toGgufMetadata(t);
        Map<String, GgufValue> inFile = new LinkedHashMap<>();
        try (GgufFile f = GgufFile.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            f.metadata().forEach((k, v) -> {
                if (k.startsWith("tokenizer.")) inFile.put(k, v);
            });
        }
        assertThat(new ArrayList<>(written.keySet())).containsExactlyElementsOf(inFile.keySet());
        for (String k : inFile.keySet()) assertThat(written.get(k)).as(k).isEqualTo(inFile.get(k));
    }

    @Test
    void ggufRoundTripForTrainedVocabularies() throws IOException {
        String text = SpmTokenizerTest.moby();
        List<Tokenizer> all = List.of(SpmTokenizerTest.trained(),
                Tokenizers.create(ToyVocabs.bpeTrained(BpeTokenizerTest.TRAIN, "llama-bpe", 200)),
                Tokenizers.create(ToyVocabs.bpeTrained(BpeTokenizerTest.TRAIN, "qwen2", 200)));
        int k = 0;
        for (Tokenizer t : all) {
            Path p = tmp.resolve("t" + k++ + ".gguf");
            MiniGguf.write(p, Tokenizers.toGgufMetadata(t));
            try (GgufFile f = GgufFile.open(p)) {
                Tokenizer back = Tokenizers.fromGguf(f).orElseThrow();
                assertThat(back.vocabulary()).isEqualTo(t.vocabulary());
                assertThat(back.encode(text, true, true)).containsExactly(t.encode(text, true, true));
            }
        }
    }

    @Test
    void hfRoundTripFixtureVocabulary() throws IOException {
        Tokenizer t = fixture();
        Tokenizers.writeHf(t, tmp);
        assertThat(tmp.resolve("tokenizer.json")).exists();
        assertThat(tmp.resolve("tokenizer_config.json")).exists();
        try (var files = Files.list(tmp)) {
            assertThat(files.filter(p -> p.toString().endsWith(".tmp"))).isEmpty();
        }
        Tokenizer back = Tokenizers.fromHfFolder(tmp);
        Vocabulary a = t.vocabulary(), b = back.vocabulary();
        assertThat(b.tokens()).containsExactly(a.tokens());
        assertThat(b.types()).containsExactly(a.types());
        assertThat(b.scores()).containsExactly(a.scores());
        assertThat(List.of(b.bosId(), b.eosId(), b.unkId(), b.padId())).containsExactly(1, 2, 0, -1);
        assertThat(b.addBos()).isTrue();
        assertThat(b.addEos()).isFalse();
        assertThat(b.addSpacePrefix()).isTrue();
        String text = SpmTokenizerTest.moby();
        assertThat(back.encode(text, true, false)).containsExactly(SpmTokenizerTest.mobyIds());
    }

    @Test
    void hfRoundTripSpmWithMerges() throws IOException {
        Tokenizer t = SpmTokenizerTest.trained();
        Tokenizers.writeHf(t, tmp);
        JsonNode json = new ObjectMapper().readTree(tmp.resolve("tokenizer.json").toFile());
        assertThat(json.path("model").path("byte_fallback").asBoolean()).isTrue();
        assertThat(json.path("model").path("merges").size()).isGreaterThan(200);
        assertThat(json.path("normalizer").path("normalizers").get(0).path("type").asText()).isEqualTo("Prepend");
        Tokenizer back = Tokenizers.fromHfFolder(tmp);
        String text = SpmTokenizerTest.moby();
        int[] ids = t.encode(text, true, true);
        assertThat(back.encode(text, true, true)).containsExactly(ids);
        assertThat(back.encode(BpeTokenizerTest.TRAIN, true, true)).containsExactly(t.encode(BpeTokenizerTest.TRAIN, true, true));
        assertThat(back.decode(ids)).isEqualTo(text);
        // scores change (they come from merge ranks) but their order is kept for the merged pieces
        Vocabulary a = t.vocabulary(), b = back.vocabulary();
        for (int i = 300; i + 1 < a.size(); i++) {
            if (a.scores()[i] > a.scores()[i + 1] && a.scores()[i + 1] > -1e5f) assertThat(b.scores()[i]).isGreaterThan(b.scores()[i + 1]);
        }
    }

    @Test
    void hfRoundTripByteLevel() throws IOException {
        String text = SpmTokenizerTest.moby();
        for (String pre : List.of("llama-bpe", "qwen2", "smollm", "gpt-2", "default")) {
            Tokenizer t = Tokenizers.create(ToyVocabs.bpeTrained(BpeTokenizerTest.TRAIN, pre, 200));
            Path dir = tmp.resolve(pre);
            Tokenizers.writeHf(t, dir);
            Tokenizer back = Tokenizers.fromHfFolder(dir);
            assertThat(back.vocabulary().pre()).isEqualTo(pre);
            assertThat(back.vocabulary().cleanSpaces()).isEqualTo(t.vocabulary().cleanSpaces());
            assertThat(back.vocabulary().ignoreMerges()).isEqualTo(t.vocabulary().ignoreMerges());
            assertThat(back.vocabulary().merges()).containsExactly(t.vocabulary().merges());
            assertThat(back.addBos()).isEqualTo(t.addBos());
            assertThat(back.encode(text, true, true)).as(pre).containsExactly(t.encode(text, true, true));
        }
        JsonNode json = new ObjectMapper().readTree(tmp.resolve("llama-bpe/tokenizer.json").toFile());
        assertThat(json.path("pre_tokenizer").path("pretokenizers").get(0).path("pattern").path("Regex").asText())
                .isEqualTo(PreTokenizer.LLAMA3_HF);
    }

    /** A Llama-3-style tokenizer.json written by hand (merges as pairs, BOS from the post-processor). */
    @Test
    void handWrittenLlama3Json() throws IOException {
        String json = """
                {"version":"1.0","added_tokens":[
                  {"id":9,"content":"<|begin_of_text|>","special":true},
                  {"id":10,"content":"<|eot_id|>","special":true}],
                 "normalizer":null,
                 "pre_tokenizer":{"type":"Sequence","pretokenizers":[
                   {"type":"Split","pattern":{"Regex":"%s"},"behavior":"Isolated","invert":false},
                   {"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]},
                 "post_processor":{"type":"Sequence","processors":[{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true},
                   {"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|begin_of_text|>","type_id":0}},
                   {"Sequence":{"id":"A","type_id":0}}]}]},
                 "decoder":{"type":"ByteLevel"},
                 "model":{"type":"BPE","ignore_merges":true,"vocab":{"h":0,"i":1,"\\u0120":2,"hi":3,"\\u0120hi":4,"1":5,"2":6,"3":7,"4":8},
                   "merges":[["h","i"],["\\u0120","hi"]]}}
                """.formatted(PreTokenizer.LLAMA3_HF.replace("\\", "\\\\"));
        Files.writeString(tmp.resolve("tokenizer.json"), json);
        // the smollm-style layout with no add_bos_token: BOS comes from the post-processor (inside a Sequence)
        Files.writeString(tmp.resolve("tokenizer_config.json"), "{\"bos_token\":\"<|begin_of_text|>\",\"eos_token\":{\"content\":\"<|eot_id|>\"}}");
        Tokenizer t = Tokenizers.fromHfFolder(tmp);
        assertThat(t.vocabulary().model()).isEqualTo("gpt2");
        assertThat(t.vocabulary().pre()).isEqualTo("llama-bpe");
        assertThat(t.addBos()).isTrue();
        assertThat(t.bosId()).isEqualTo(9);
        assertThat(t.eosId()).isEqualTo(10);
        assertThat(t.isEog(10)).isTrue();
        assertThat(t.encode("hi hi1234<|eot_id|>", true, true)).containsExactly(9, 3, 4, 5, 6, 7, 8, 10);
        assertThat(t.decode(new int[]{9, 3, 4, 10})).isEqualTo("hi hi");
        assertThat(Tokenizers.toGgufMetadata(t).get("tokenizer.ggml.pre")).isEqualTo(GgufValue.string("llama-bpe"));
    }

    /** A Llama-2-style tokenizer.json in the newer layout (Metaspace pre-tokenizer, no normalizer). */
    @Test
    void handWrittenMetaspaceJson() throws IOException {
        String json = """
                {"added_tokens":[{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},
                                 {"id":2,"content":"</s>","special":true}],
                 "normalizer":null,
                 "pre_tokenizer":{"type":"Metaspace","replacement":"\\u2581","prepend_scheme":"first","split":false},
                 "model":{"type":"BPE","unk_token":"<unk>","byte_fallback":true,
                   "vocab":{"<unk>":0,"<s>":1,"</s>":2,"<0x21>":3,"\\u2581":4,"a":5,"b":6,"\\u2581a":7,"ab":8,"\\u2581ab":9},
                   "merges":["\\u2581 a","a b","\\u2581a b","\\u2581 ab"]}}
                """;
        Path p = tmp.resolve("tokenizer.json");
        Files.writeString(p, json);
        Tokenizer t = Tokenizers.fromTokenizerJson(p, null);
        assertThat(t.vocabulary().model()).isEqualTo("llama");
        assertThat(t.vocabulary().addSpacePrefix()).isTrue();
        assertThat(t.type(3)).isEqualTo(TokenType.BYTE);
        assertThat(t.type(0)).isEqualTo(TokenType.UNKNOWN);
        // HF: ▁ab ▁a b? merges: (▁,a)=0 first -> ▁a b; (▁a,b)=2 -> ▁ab
        assertThat(t.encode("ab a!", true, false)).containsExactly(1, 9, 7, 3);
        assertThat(t.decode(new int[]{1, 9, 7, 3})).isEqualTo("ab a!");
    }

    /** A stand-in checkpoint: just a config, and optionally an HF folder. */
    private record Source(Path path, int vocab, Path folder) implements dev.lathe.model.WeightSource {
        public dev.lathe.model.ModelConfig config() {
            return new dev.lathe.model.ModelConfig("llama", 64, 1, 4, 4, 16, 128, vocab, 1e-5f, 10000f,
                    dev.lathe.model.RopeStyle.HALF, null, 128, false, false);
        }

        public java.util.Set<String> tensorNames() {
            return java.util.Set.of();
        }

        public dev.lathe.tensor.Tensor tensor(String name) {
            throw new LatheException(path, "no tensor " + name);
        }

        public java.util.Optional<Path> hfFolder() {
            return java.util.Optional.ofNullable(folder);
        }

        public void close() {}
    }

    @Test
    void loadFromWeightSource() {
        // a checkpoint without any tokenizer (llama2.c-like): empty
        assertThat(Tokenizers.load(new Source(tmp.resolve("model.bin"), 259, null))).isEmpty();
        assertThat(Tokenizers.load(new Source(tmp, 259, tmp))).isEmpty(); // HF folder without tokenizer.json
        Tokenizers.writeHf(Tokenizers.create(ToyVocabs.tinyLlama()), tmp);
        Tokenizer same = Tokenizers.load(new Source(tmp, 259, tmp)).orElseThrow();
        assertThat(same.vocabulary().tokens()).containsExactly(ToyVocabs.tinyLlama().tokens());
        // the model's embedding has more rows than the tokenizer has tokens: padded with unused tokens
        Tokenizer padded = Tokenizers.load(new Source(tmp, 272, tmp)).orElseThrow();
        assertThat(padded.vocabSize()).isEqualTo(272);
        assertThat(padded.token(271)).isEqualTo("[PAD271]");
        assertThat(padded.type(271)).isEqualTo(TokenType.UNUSED);
        assertThat(padded.decode(new int[]{271, 3 + 'a'})).isEqualTo("a");
        assertThatThrownBy(() -> Tokenizers.load(new Source(tmp, 100, tmp))).isInstanceOf(LatheException.class)
                .hasMessageContaining("259");
    }

    @Test
    void badInputNamesTheFile() throws IOException {
        Path bad = tmp.resolve("tokenizer.json");
        Files.writeString(bad, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,,}}");
        assertThatThrownBy(() -> Tokenizers.fromTokenizerJson(bad, null)).isInstanceOf(LatheException.class)
                .hasMessageContaining(bad.toString()).hasMessageContaining("invalid JSON");
        Files.writeString(bad, "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
        assertThatThrownBy(() -> Tokenizers.fromTokenizerJson(bad, null)).isInstanceOf(LatheException.class)
                .hasMessageContaining(bad.toString()).hasMessageContaining("Unigram");
        Files.writeString(bad, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}}}");
        assertThatThrownBy(() -> Tokenizers.fromTokenizerJson(bad, null)).isInstanceOf(LatheException.class)
                .hasMessageContaining(bad.toString());
        assertThatThrownBy(() -> Tokenizers.fromHfFolder(tmp.resolve("nowhere"))).isInstanceOf(LatheException.class);
        Files.writeString(bad, "{\"model\": {\"type\": \"BPE\", \"continuing_subword_prefix\": \"##\", \"vocab\": {\"a\": 0}}}");
        assertThatThrownBy(() -> Tokenizers.fromTokenizerJson(bad, null)).isInstanceOf(LatheException.class)
                .hasMessageContaining("continuing_subword_prefix");
        Files.writeString(bad, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"nospace\"]},"
                + " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
        assertThatThrownBy(() -> Tokenizers.fromTokenizerJson(bad, null)).isInstanceOf(LatheException.class)
                .hasMessageContaining("merges[0]");
        Files.writeString(bad, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}");
        assertThatThrownBy(() -> Tokenizers.fromTokenizerJson(bad, null)).isInstanceOf(LatheException.class)
                .hasMessageContaining("unsupported tokenizer");

        // GGUF: scores shorter than tokens, unknown model, bos outside the vocabulary
        Map<String, GgufValue> md = new LinkedHashMap<>(Tokenizers.toGgufMetadata(Tokenizers.create(ToyVocabs.tinyLlama())));
        md.put("tokenizer.ggml.scores", GgufValue.array(GgufValueType.FLOAT32, new float[10]));
        assertGgufRejected(md, "scores");
        md = new LinkedHashMap<>(Tokenizers.toGgufMetadata(Tokenizers.create(ToyVocabs.tinyLlama())));
        md.put("tokenizer.ggml.model", GgufValue.string("t5"));
        assertGgufRejected(md, "t5");
        md = new LinkedHashMap<>(Tokenizers.toGgufMetadata(Tokenizers.create(ToyVocabs.tinyLlama())));
        md.put("tokenizer.ggml.bos_token_id", GgufValue.u32(5000));
        assertGgufRejected(md, "5000");
        md = new LinkedHashMap<>(Tokenizers.toGgufMetadata(Tokenizers.create(ToyVocabs.bpeTrained("abc abc", "qwen2", 2))));
        md.put("tokenizer.ggml.pre", GgufValue.string("no-such-pre"));
        assertGgufRejected(md, "no-such-pre");
        // no tokenizer at all: empty, not an error
        MiniGguf.write(tmp.resolve("empty.gguf"), Map.of("general.architecture", GgufValue.string("llama")));
        try (GgufFile f = GgufFile.open(tmp.resolve("empty.gguf"))) {
            assertThat(Tokenizers.fromGguf(f)).isEmpty();
        }
    }

    private void assertGgufRejected(Map<String, GgufValue> md, String what) throws IOException {
        Path p = tmp.resolve("bad-" + what + ".gguf");
        MiniGguf.write(p, md);
        try (GgufFile f = GgufFile.open(p)) {
            assertThatThrownBy(() -> Tokenizers.fromGguf(f)).isInstanceOf(LatheException.class)
                    .hasMessageContaining(p.toString()).hasMessageContaining(what);
        }
    }
}
