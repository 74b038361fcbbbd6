package dev.lathe.tokenizer;

import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

class BpeTokenizerTest {
    static final String TRAIN = String.join("\n", List.of(
            "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse,",
            "and nothing particular to interest me on shore, I thought I'd sail about a little and see the",
            "watery part of the world. It's a way I have of driving off the spleen, and regulating the circulation.",
            "Whenever I find myself growing grim about the mouth; whenever it's a damp, drizzly November in my soul;",
            "then, I account it high time to get to sea as soon as I can. There now is your insular city of the Manhattoes,",
            "belted round by wharves as Indian isles by coral reefs\u2014commerce surrounds it with her surf. 1851 2024 3.14"));

    private static final java.util.Map<String, Tokenizer> TRAINED = new java.util.concurrent.ConcurrentHashMap<>();

    private static Tokenizer trained(String pre) {
        return TRAINED.computeIfAbsent(pre, p -> Tokenizers.create(ToyVocabs.bpeTrained(TRAIN.repeat(2), p, 300)));
    }

    static final String SAMPLE = "I'm 123 don't  go!!\n\nhey   you 4567";

    @Test
    void gpt2RegexPieces() {
        assertThat(PreTokenizer.forName("gpt-2").split(SAMPLE)).containsExactly(
                "I", "'m", " 123", " don", "'t", " ", " go", "!!", "\n", "\n", "hey", "  ", " you", " 4567");
        // contractions are case-sensitive in GPT-2
        assertThat(PreTokenizer.forName("gpt-2").split("I'M HE'LL")).containsExactly("I", "'", "M", " HE", "'", "LL");
        assertThat(PreTokenizer.forName("gpt-2").split("h\u00e9llo w\u00f6rld \u4e2d\u6587 \u0663\u0664 x\t\ty  "))
                .containsExactly("h\u00e9llo", " w\u00f6rld", " \u4e2d\u6587", " \u0663\u0664", " x", "\t", "\t", "y", "  "); // only a plain space joins the next word
    }

    @Test
    void llama3RegexPieces() {
        assertThat(PreTokenizer.forName("llama-bpe").split(SAMPLE)).containsExactly(
                "I", "'m", " ", "123", " don", "'t", " ", " go", "!!\n\n", "hey", "  ", " you", " ", "456", "7");
        // contractions are case-insensitive; a non-letter glues to the next word; \r\n runs stay together
        assertThat(PreTokenizer.forName("llama-bpe").split("I'M HE'LL (x) ok.\r\n  \r\nend"))
                .containsExactly("I", "'M", " HE", "'LL", " (", "x", ")", " ok", ".\r\n", "  \r\n", "end");
        assertThat(PreTokenizer.forName("llama3").split("1234567")).containsExactly("123", "456", "7");
    }

    @Test
    void qwen2AndSmollmRegexPieces() {
        assertThat(PreTokenizer.forName("qwen2").split(SAMPLE)).containsExactly(
                "I", "'m", " ", "1", "2", "3", " don", "'t", " ", " go", "!!\n\n", "hey", "  ", " you", " ", "4", "5", "6", "7");
        assertThat(PreTokenizer.forName("smollm").split(SAMPLE)).containsExactly(
                "I", "'m", " ", "1", "2", "3", " don", "'t", " ", " go", "!!", "\n", "\n", "hey", "  ", " you", " ", "4", "5", "6", "7");
        assertThat(PreTokenizer.forName("default").split("a+b=3,000!")).containsExactly("a", "+", "b", "=", "3", ",", "000", "!");
    }

    /** A hand-made GPT-2 style vocabulary: 256 byte characters, then the merge results. */
    private static Tokenizer handMade(String pre) {
        String[] merges = {"\u0120 t", "h e", "\u0120t he", "t h", "i n", "\u0120 a", "\u0120a n", "\u0120an d", "in g"};
        List<String> tokens = new ArrayList<>();
        for (int b = 0; b < 256; b++) tokens.add(String.valueOf(ByteLevel.byteToChar(b)));
        for (String m : merges) tokens.add(m.replace(" ", ""));
        tokens.add("<|endoftext|>");
        tokens.add("ab"); // a token no merge makes
        TokenType[] types = new TokenType[tokens.size()];
        java.util.Arrays.fill(types, TokenType.NORMAL);
        types[256 + merges.length] = TokenType.CONTROL;
        boolean[] f = Tokenizers.bpeFlags(pre);
        return Tokenizers.create(new Vocabulary(Vocabulary.BPE, pre, tokens.toArray(String[]::new), new float[tokens.size()],
                types, merges, -1, 256 + merges.length, -1, -1, -1, false, false, false, f[1], f[2], null));
    }

    @Test
    void knownSplits() {
        Tokenizer t = handMade("gpt-2");
        // " the" -> Ġ t h e -> Ġt h e -> Ġt he -> Ġthe
        assertThat(tokens(t, " the")).containsExactly("\u0120the");
        // "the" -> t h e: "h e" (rank 1) beats "t h" (rank 3) -> t he, and "t he" is no merge
        assertThat(tokens(t, "the")).containsExactly("t", "he");
        assertThat(tokens(t, " and thing")).containsExactly("\u0120and", "\u0120t", "h", "ing");
        assertThat(tokens(t, "ab")).containsExactly("a", "b");
        // multi-byte characters are byte-level characters
        assertThat(tokens(t, "\u00e9")).containsExactly("\u00c3", "\u00a9");
        assertThat(t.decode(t.encode(" the \u00e9", false, false))).isEqualTo(" the \u00e9");
        // streaming: the first byte of a 2-byte character is held back until the second arrives
        StreamDecoder d = t.streamDecoder();
        int[] ids = t.encode(" the\u00e9", false, false);
        assertThat(d.push(ids[0])).isEqualTo(" the");
        assertThat(d.push(ids[1])).isEmpty();
        assertThat(d.push(ids[2])).isEqualTo("\u00e9");
        assertThat(d.flush()).isEmpty();
        // ignore_merges (llama3): a pre-token that is a token is taken whole
        assertThat(tokens(handMade("llama-bpe"), "ab")).containsExactly("ab");
        assertThat(handMade("llama-bpe").addBos()).isFalse(); // add_bos is a vocabulary flag, given here
    }

    private static List<String> tokens(Tokenizer t, String text) {
        List<String> out = new ArrayList<>();
        for (int id : t.encode(text, false, false)) out.add(t.token(id));
        return out;
    }

    @Test
    void specialTokens() {
        Tokenizer t = trained("qwen2");
        int eot = t.id("<|endoftext|>").orElseThrow();
        int user = t.id("<|user|>").orElseThrow();
        assertThat(t.isEog(eot)).isTrue();
        assertThat(t.isControl(eot)).isTrue();
        assertThat(t.isSpecial(user)).isTrue();
        assertThat(t.isControl(user)).isFalse();
        int[] parsed = t.encode("hi<|endoftext|>there", false, true);
        assertThat(parsed).contains(eot);
        int[] raw = t.encode("hi<|endoftext|>there", false, false);
        assertThat(raw).doesNotContain(eot);
        assertThat(t.decode(raw)).isEqualTo("hi<|endoftext|>there");
        assertThat(t.decode(parsed)).isEqualTo("hithere");
        assertThat(t.decode(parsed, true)).isEqualTo("hi<|endoftext|>there");
        // user-defined tokens are split out even without parse_special, and printed
        int[] u = t.encode("a<|user|>b", false, false);
        assertThat(u).contains(user);
        assertThat(t.decode(u)).isEqualTo("a<|user|>b");
    }

    @Test
    void trainedMergesMatchNaiveReference() throws IOException {
        String text = SpmTokenizerTest.moby();
        for (String pre : List.of("gpt-2", "llama-bpe", "qwen2", "smollm")) {
            Tokenizer t = trained(pre);
            List<Integer> naive = new ArrayList<>();
            for (String piece : PreTokenizer.forName(pre).split(text)) naive.addAll(ToyVocabs.naiveBpe(t.vocabulary(), piece));
            int[] fast = t.encode(text, false, false);
            assertThat(fast).as(pre).containsExactly(naive.stream().mapToInt(Integer::intValue).toArray());
            assertThat(fast.length).as(pre).isLessThan(text.length() * 7 / 10);
            if (!t.vocabulary().cleanSpaces()) assertThat(t.decode(fast)).as(pre).isEqualTo(text);
            // a second pass hits the per-pre-token cache and must give the same ids
            assertThat(t.encode(text, false, false)).as(pre).containsExactly(fast);
        }
    }

    @Test
    void llama3AddsBosAndCleansSpaces() {
        Tokenizer t = trained("llama-bpe");
        assertThat(t.addBos()).isTrue();
        int[] ids = t.encode("Hi , there .", true, false);
        assertThat(ids[0]).isEqualTo(t.bosId());
        // llama.cpp's clean_up_tokenization_spaces for llama-bpe (not for qwen2)
        assertThat(t.decode(ids)).isEqualTo("Hi, there.");
        Tokenizer q = trained("qwen2");
        assertThat(q.addBos()).isFalse();
        assertThat(q.decode(q.encode("Hi , there .", true, false))).isEqualTo("Hi , there .");
    }

    @Provide
    Arbitrary<String> unicodeText() {
        Arbitrary<Integer> cp = Arbitraries.oneOf(
                Arbitraries.integers().between(0x20, 0x7e),
                Arbitraries.of(0x20, 0x0a, 0x0d, 0x09, 0x00a0, 0x3000, 0x2581, 0x27),
                Arbitraries.integers().between(0x80, 0xd7ff),
                Arbitraries.integers().between(0xe000, 0x10ffff));
        return cp.list().ofMaxSize(40).map(l -> {
            StringBuilder sb = new StringBuilder();
            l.forEach(sb::appendCodePoint);
            return sb.toString();
        });
    }

    @Property(tries = 300, seed = "7")
    void byteLevelRoundTrip(@ForAll("unicodeText") String s) {
        for (String pre : List.of("qwen2", "smollm")) {
            Tokenizer t = trained(pre);
            assertThat(t.decode(t.encode(s, false, false))).isEqualTo(s);
            assertThat(String.join("", PreTokenizer.forName(pre).split(s))).isEqualTo(s);
        }
        assertThat(String.join("", PreTokenizer.forName("llama-bpe").split(s))).isEqualTo(s);
        assertThat(String.join("", PreTokenizer.forName("default").split(s))).isEqualTo(s);
    }
}
