package dev.lathe.tokenizer.train;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;
import dev.lathe.tokenizer.Vocabulary;
import dev.lathe.train.TextCorpus;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class SpmBpeTrainerTest {
    static final String MIXED = "Ünïcödé — “quotes”,  double  spaces,\ttabs\nnew lines\n\n中文 and emoji 🙂 <s> <0x41> end ";

    static String slice;
    static SpmBpeTrainer.Result trained;

    @TempDir
    Path dir;

    @BeforeAll
    static void train() throws IOException {
        Path emma = Fixtures.data("text/train/austen-emma.txt");
        String all = Files.readString(emma);
        slice = all.substring(0, 120_000);
        trained = SpmBpeTrainer.train(counts(slice), SpmBpeTrainer.Options.of(800, 0), null, emma);
    }

    static Map<String, long[]> counts(String text) {
        Map<String, long[]> c = new HashMap<>();
        SpmBpeTrainer.addWords(text, c);
        return c;
    }

    @Test
    void vocabularyHasTheLlama2LayoutAndStrictlyDecreasingScores() {
        Vocabulary v = trained.vocabulary();
        assertThat(v.size()).isEqualTo(800);
        assertThat(v.tokens()[0]).isEqualTo("<unk>");
        assertThat(v.tokens()[1]).isEqualTo("<s>");
        assertThat(v.tokens()[2]).isEqualTo("</s>");
        assertThat(v.tokens()[3]).isEqualTo("<0x00>");
        assertThat(v.tokens()[258]).isEqualTo("<0xFF>");
        assertThat(trained.merges()).hasSize(800 - 259 - trained.alphabet().size());
        for (int i = 260; i < v.size(); i++) assertThat(v.scores()[i]).isLessThan(v.scores()[i - 1]);
        // the commonest English pieces are learnt early
        assertThat(trained.merges().subList(0, 40)).contains("▁t", "he");
        assertThat(trained.merges()).contains("▁the", "▁and");
        assertThat(trained.alphabet()).contains("▁", "e", "t");
    }

    @Test
    void trainingIsDeterministic() {
        SpmBpeTrainer.Result again = SpmBpeTrainer.train(counts(slice), SpmBpeTrainer.Options.of(800, 0), null, null);
        assertThat(again.vocabulary()).isEqualTo(trained.vocabulary());
    }

    @Test
    void theTokenizerSegmentsTextExactlyAsTheTrainerDid() {
        Tokenizer t = trained.tokenizer();
        int[] ids = t.encode(slice, false, false);
        // the trainer's segmentation of each word, in text order, bytes for characters outside the alphabet
        List<Integer> expected = new ArrayList<>();
        Map<String, long[]> order = new LinkedHashMap<>();
        String s = '\u2581' + slice.replace(' ', '\u2581');
        int start = 0;
        for (int i = 1; i <= s.length(); i++) {
            if (i == s.length() || (s.charAt(i) == '\u2581' && s.charAt(i - 1) != '\u2581')) {
                String w = s.substring(start, i);
                int[] seg = trained.wordSegmentations().get(w);
                assertThat(seg).as(w).isNotNull();
                int pos = 0;
                for (int id : seg) {
                    if (id >= 0) {
                        expected.add(id);
                        pos += trained.vocabulary().tokens()[id].length();
                    } else { // a character outside the alphabet: its UTF-8 bytes
                        int cp = w.codePointAt(pos);
                        for (byte b : new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8)) {
                            expected.add(t.id(String.format("<0x%02X>", b & 0xff)).getAsInt());
                        }
                        pos += Character.charCount(cp);
                    }
                }
                assertThat(pos).isEqualTo(w.length());
                order.put(w, null);
                start = i;
            }
        }
        assertThat(ids).containsExactly(expected.stream().mapToInt(Integer::intValue).toArray());
        assertThat(ids.length).isLessThan(slice.length() * 2 / 5); // it compresses: > 2.5 characters per token (CRLF text)
    }

    @Test
    void textRoundTripsIncludingCharactersOutsideTheAlphabet() {
        Tokenizer t = trained.tokenizer();
        assertThat(t.decode(t.encode(slice, true, false))).isEqualTo(slice);
        int[] mixed = t.encode(MIXED, false, false);
        assertThat(t.decode(mixed)).isEqualTo(MIXED);
        assertThat(mixed).contains(t.id("<0xF0>").getAsInt()); // emoji via byte fallback
    }

    @Test
    void savedTokenizerJsonAndGgufMetadataTokenizeIdentically() {
        SpmBpeTrainer.save(trained.vocabulary(), dir);
        assertThat(dir.resolve("tokenizer.json")).isRegularFile();
        assertThat(dir.resolve("tokenizer_config.json")).isRegularFile();
        Tokenizer mem = trained.tokenizer();
        Tokenizer json = Tokenizers.fromHfFolder(dir);
        Tokenizer gguf = Tokenizers.fromGguf(dir.resolve(SpmBpeTrainer.GGUF_METADATA)).orElseThrow();
        assertThat(gguf.vocabulary()).isEqualTo(mem.vocabulary());
        assertThat(json.vocabulary().tokens()).containsExactly(mem.vocabulary().tokens());
        String tail = slice.substring(slice.length() - 20_000);
        for (String text : List.of(tail, MIXED)) {
            int[] want = mem.encode(text, true, false);
            assertThat(json.encode(text, true, false)).containsExactly(want);
            assertThat(gguf.encode(text, true, false)).containsExactly(want);
        }
    }

    @Test
    void aVocabularyLargerThanTheDataSupportsIsRefused() {
        assertThatThrownBy(() -> SpmBpeTrainer.train(counts("abab abab cdcd"), SpmBpeTrainer.Options.of(400, 0), null, dir))
                .isInstanceOf(LatheException.class).hasMessageContaining("larger than the data supports");
        assertThatThrownBy(() -> SpmBpeTrainer.Options.of(100, 0)).isInstanceOf(LatheException.class).hasMessageContaining("too small");
    }

    @Test
    void invalidUtf8IsReportedWithFileAndOffset() throws IOException {
        Path f = dir.resolve("bad.txt");
        byte[] good = "hello world ".getBytes(StandardCharsets.UTF_8);
        byte[] b = new byte[good.length + 2];
        System.arraycopy(good, 0, b, 0, good.length);
        b[good.length] = (byte) 0xC3;
        b[good.length + 1] = (byte) 0x28;
        Files.write(f, b);
        assertThatThrownBy(() -> SpmBpeTrainer.train(TextCorpus.of(List.of(f), false), SpmBpeTrainer.Options.of(300, 0), null))
                .isInstanceOf(LatheException.class).hasMessageContaining("bad.txt").hasMessageContaining("byte offset 12");
    }
}
