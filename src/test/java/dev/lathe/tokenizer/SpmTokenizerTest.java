package dev.lathe.tokenizer;

import dev.lathe.Fixtures;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.io.hf.HfWeightSource;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

import static org.assertj.core.api.Assertions.assertThat;

class SpmTokenizerTest {
    private static final Tokenizer TINY = Tokenizers.create(ToyVocabs.tinyLlama());
    private static volatile Tokenizer trained;

    static String moby() throws IOException {
        return Files.readString(Fixtures.fixture("text/moby-16k.txt"), StandardCharsets.UTF_8);
    }

    static int[] mobyIds() throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(Fixtures.fixture("tiny-llama/tokens/moby-16k.ids.i32le.bin")))
                .order(ByteOrder.LITTLE_ENDIAN);
        int[] ids = new int[b.remaining() / 4];
        b.asIntBuffer().get(ids);
        return ids;
    }

    /** An SPM vocabulary with ~400 merged pieces learned on a fixed text (no fixture needed). */
    static Tokenizer trained() {
        if (trained == null) {
            String text = String.join(" ", List.of(
                    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse,",
                    "and nothing particular to interest me on shore, I thought I would sail about a little and see the",
                    "watery part of the world. It is a way I have of driving off the spleen, and regulating the circulation.",
                    "Whenever I find myself growing grim about the mouth; whenever it is a damp, drizzly November in my soul;",
                    "then, I account it high time to get to sea as soon as I can. There now is your insular city of the Manhattoes,",
                    "belted round by wharves as Indian isles by coral reefs\u2014commerce surrounds it with her surf."));
            trained = Tokenizers.create(ToyVocabs.spmTrained(text.repeat(3), 400));
        }
        return trained;
    }

    @Test
    void mobyMatchesLlamaCppIdsExactly() throws IOException {
        try (GgufFile f = GgufFile.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            Tokenizer t = Tokenizers.fromGguf(f).orElseThrow();
            assertThat(t.vocabSize()).isEqualTo(259);
            assertThat(t.bosId()).isEqualTo(1);
            assertThat(t.eosId()).isEqualTo(2);
            assertThat(t.unkId()).isEqualTo(0);
            assertThat(t.addBos()).isTrue();
            assertThat(t.addEos()).isFalse();
            assertThat(t.isControl(1)).isTrue();
            assertThat(t.type(0)).isEqualTo(TokenType.UNKNOWN);
            assertThat(t.type(3 + 0x41)).isEqualTo(TokenType.BYTE);
            assertThat(t.token(3 + 0x0A)).isEqualTo("<0x0A>");
            String text = moby();
            int[] expected = mobyIds();
            assertThat(expected).hasSize(20608);
            assertThat(t.encode(text, true, false)).containsExactly(expected);
            assertThat(t.encode(text)).containsExactly(expected);
            // the same with the vocabulary built by hand from the README's description
            assertThat(TINY.encode(text, true, false)).containsExactly(expected);
            assertThat(t.decode(expected)).isEqualTo(text);
            assertThat(t.vocabulary()).isEqualTo(Vocabulary.sentencePiece(List.of(), new float[0]));
        }
    }

    @Test
    void loadsThroughWeightSource() {
        try (GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            Optional<Tokenizer> t = Tokenizers.load(src);
            assertThat(t).isPresent();
            assertThat(t.get().vocabulary()).isEqualTo(ToyVocabs.tinyLlama());
        }
        // the HF folder of tiny-llama has no tokenizer files
        try (HfWeightSource src = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            assertThat(Tokenizers.load(src)).isEmpty();
        }
    }

    @Test
    void readmeExamples() {
        // BOS, "▁" (3 bytes), C H A P T E R
        assertThat(TINY.encode("CHAPTER", true, false)).startsWith(1, 229, 153, 132, 70, 75, 68, 83, 87, 72, 85);
        // em dash is 3 byte tokens, newline is 13, a later space is ▁ again
        assertThat(TINY.encode("a\u2014b\nc d", false, false)).containsExactly(
                229, 153, 132, 'a' + 3, 229, 131, 151, 'b' + 3, 13, 'c' + 3, 229, 153, 132, 'd' + 3);
        assertThat(TINY.encode("", true, false)).containsExactly(1);
        assertThat(TINY.encode("", false, false)).isEmpty();
    }

    @Test
    void controlTokensParsedOnlyWhenAsked() {
        // parse_special: "<s>" becomes BOS and the text after it gets a space prefix again
        assertThat(TINY.encode("a</s>b", false, true)).containsExactly(229, 153, 132, 'a' + 3, 2, 229, 153, 132, 'b' + 3);
        int[] plain = TINY.encode("a</s>b", false, false);
        assertThat(plain).doesNotContain(2).hasSize(4 + 4 + 1);
        assertThat(TINY.decode(plain)).isEqualTo("a</s>b");
        assertThat(TINY.decode(new int[]{1, 229, 153, 132, 'a' + 3, 2})).isEqualTo("a");
        assertThat(TINY.decode(new int[]{1, 229, 153, 132, 'a' + 3, 2}, true)).isEqualTo("<s> a</s>");
    }

    @Test
    void mergesFollowScoresLikeNaiveReference() throws IOException {
        Tokenizer t = trained();
        String text = moby();
        int[] fast = t.encode(text, false, false);
        String head = text.substring(0, 4000); // the naive reference is quadratic
        List<Integer> naive = ToyVocabs.naiveSpm(t.vocabulary(), head, true);
        assertThat(t.encode(head, false, false)).containsExactly(naive.stream().mapToInt(Integer::intValue).toArray());
        assertThat(fast.length).isLessThan(text.length() * 7 / 10); // merges really happen (byte fallback alone: > 1 id per char)
        assertThat(t.decode(fast)).isEqualTo(text);
    }

    @Test
    void streamDecoderHoldsPartialUtf8() {
        StreamDecoder d = TINY.streamDecoder();
        int[] ids = TINY.encode("é\u4e2d!", false, false); // ▁ (3 bytes), C3 A9, E4 B8 AD, !
        StringBuilder sb = new StringBuilder();
        List<String> outs = new java.util.ArrayList<>();
        for (int id : ids) {
            String s = d.push(id);
            outs.add(s);
            sb.append(s);
        }
        sb.append(d.flush());
        assertThat(sb.toString()).isEqualTo(" é\u4e2d!");
        assertThat(outs).containsExactly("", "", " ", "", "é", "", "", "\u4e2d", "!");
        StreamDecoder d2 = new StreamDecoder(TINY, true);
        StringBuilder sb2 = new StringBuilder();
        for (int id : TINY.encode("hi there", true, false)) sb2.append(d2.push(id));
        assertThat(sb2.toString()).isEqualTo("hi there");
        // an unfinished sequence comes out as U+FFFD on flush
        StreamDecoder d3 = TINY.streamDecoder();
        assertThat(d3.push(3 + 0xE4)).isEmpty();
        assertThat(d3.flush()).isEqualTo("\uFFFD");
    }

    @Provide
    Arbitrary<String> unicodeText() {
        Arbitrary<Integer> cp = Arbitraries.oneOf(
                Arbitraries.integers().between(0x20, 0x7e),
                Arbitraries.of(0x20, 0x0a, 0x09, 0x00a0, 0x3000),
                Arbitraries.integers().between(0x80, 0xd7ff),
                Arbitraries.integers().between(0xe000, 0x10ffff));
        // U+2581 is excluded: in SPM it is the escaped space, so a literal one decodes as a space
        return cp.filter(c -> c != 0x2581).list().ofMaxSize(40).map(l -> {
            StringBuilder sb = new StringBuilder();
            l.forEach(sb::appendCodePoint);
            return sb.toString();
        });
    }

    @Property(tries = 300, seed = "42")
    void roundTripByteFallbackVocab(@ForAll("unicodeText") String s) {
        assertThat(TINY.decode(TINY.encode(s, true, false))).isEqualTo(s);
    }

    @Property(tries = 300, seed = "43")
    void roundTripTrainedVocab(@ForAll("unicodeText") String s) {
        Tokenizer t = trained();
        int[] ids = t.encode(s, true, false);
        assertThat(t.decode(ids)).isEqualTo(s);
        assertThat(ids).containsExactly(java.util.stream.IntStream.concat(java.util.stream.IntStream.of(1),
                ToyVocabs.naiveSpm(t.vocabulary(), s, true).stream().mapToInt(Integer::intValue)).toArray());
    }

    @Property(tries = 200, seed = "44")
    void roundTripTrainedVocabAsciiWords(@ForAll("words") String s) {
        Tokenizer t = trained();
        assertThat(t.decode(t.encode(s, true, false))).isEqualTo(s);
    }

    @Provide
    Arbitrary<String> words() {
        return Arbitraries.of("the", "sea", "Ishmael", " ", "  ", ",", ".", "\n", "whale", "and", "I", "s").list().ofMaxSize(30)
                .map(l -> String.join("", l));
    }
}
