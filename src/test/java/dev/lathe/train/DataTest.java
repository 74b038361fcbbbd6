package dev.lathe.train;

import dev.lathe.LatheException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class DataTest {
    @TempDir
    Path dir;

    private Path write(String name, byte[] bytes) throws IOException {
        Path p = dir.resolve(name);
        Files.createDirectories(p.getParent());
        Files.write(p, bytes);
        return p;
    }

    @Test
    void invalidUtf8IsReportedWithFileAndByteOffset() throws IOException {
        Path a = write("a.txt", new byte[] {'a', 'b', 'c', (byte) 0xC3, '(', 'd'});
        assertThatThrownBy(() -> TextCorpus.readUtf8(a)).isInstanceOf(LatheException.class)
                .hasMessageContaining(a.toString()).hasMessageContaining("byte offset 3");
        Path b = write("b.txt", new byte[] {'a', 'b', (byte) 0xE2, (byte) 0x82});
        assertThatThrownBy(() -> TextCorpus.readUtf8(b)).isInstanceOf(LatheException.class).hasMessageContaining("byte offset 2");
        byte[] big = new byte[200_001];
        Arrays.fill(big, (byte) 'x');
        big[131_074] = (byte) 0xFF; // in the third 64 KiB chunk
        Path c = write("c.txt", big);
        assertThatThrownBy(() -> TextCorpus.readUtf8(c)).isInstanceOf(LatheException.class).hasMessageContaining("byte offset 131074");
        // a multi-byte character split across the chunk boundary is fine
        byte[] ok = new byte[65_537];
        Arrays.fill(ok, (byte) 'y');
        ok[65_535] = (byte) 0xC3;
        ok[65_536] = (byte) 0xA9;
        String s = TextCorpus.readUtf8(write("ok.txt", ok));
        assertThat(s).hasSize(65_536).endsWith("yé");
        // and the corpus reports the same error
        assertThatThrownBy(() -> TextCorpus.of(List.of(dir), false).forEach(d -> {})).isInstanceOf(LatheException.class)
                .hasMessageContaining(a.toString());
    }

    @Test
    void foldersAreWalkedInOrderAndParagraphsCanBeDocuments() throws IOException {
        write("z/2.txt", "second file".getBytes(StandardCharsets.UTF_8));
        write("z/1.txt", "first para\nstill first\n\n\n  \nsecond para\r\n\r\nthird".getBytes(StandardCharsets.UTF_8));
        write("z/.hidden", "ignored".getBytes(StandardCharsets.UTF_8));
        List<String> whole = new ArrayList<>(), paras = new ArrayList<>();
        TextCorpus.of(List.of(dir.resolve("z")), false).forEach(d -> whole.add(d.text()));
        TextCorpus.of(List.of(dir.resolve("z")), true).forEach(d -> paras.add(d.index() + ":" + d.text()));
        assertThat(whole).hasSize(2);
        assertThat(whole.get(1)).isEqualTo("second file");
        assertThat(paras).containsExactly("0:first para\nstill first", "1:second para", "2:third", "3:second file");
        assertThatThrownBy(() -> TextCorpus.of(List.of(dir.resolve("missing")), false)).isInstanceOf(LatheException.class)
                .hasMessageContaining("missing");
    }

    @Test
    void documentsArePackedWithMarkersAndSplitBySeed() throws IOException {
        write("d/a.txt", "ab".getBytes(StandardCharsets.UTF_8));
        write("d/b.txt", "c".getBytes(StandardCharsets.UTF_8));
        TokenData d = TokenData.build(TextCorpus.of(List.of(dir.resolve("d")), false), TextEncoder.bytes(3), 1, 2, 0.0, 5);
        assertThat(d.train()).containsExactly(1, 'a' + 3, 'b' + 3, 2, 1, 'c' + 3, 2);
        assertThat(d.validation()).isEmpty();
        assertThat(d.trainBytes()).isEqualTo(3);

        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 300; i++) sb.append("doc ").append(i).append("\n\n");
        write("many/all.txt", sb.toString().getBytes(StandardCharsets.UTF_8));
        TextCorpus corpus = TextCorpus.of(List.of(dir.resolve("many")), true);
        TokenData s1 = TokenData.build(corpus, TextEncoder.bytes(3), 1, -1, 0.2, 42);
        TokenData s2 = TokenData.build(corpus, TextEncoder.bytes(3), 1, -1, 0.2, 42);
        TokenData s3 = TokenData.build(corpus, TextEncoder.bytes(3), 1, -1, 0.2, 43);
        assertThat(s1.trainDocs() + s1.validationDocs()).isEqualTo(300);
        assertThat(s1.validationDocs()).isBetween(30, 90);
        assertThat(s2.validation()).containsExactly(s1.validation());
        assertThat(s3.validation()).isNotEqualTo(s1.validation());
        // document level: every validation document is whole, and none is also in training
        Set<String> val = docs(s1.validation()), train = docs(s1.train());
        assertThat(val).hasSize(s1.validationDocs());
        assertThat(train).doesNotContainAnyElementsOf(val);
        long bytes = 0;
        for (String v : val) bytes += v.length();
        assertThat(s1.validationBytes()).isEqualTo(bytes);
    }

    /** Splits a stream at BOS (1) back into texts. */
    private static Set<String> docs(int[] stream) {
        Set<String> out = new HashSet<>();
        StringBuilder cur = null;
        for (int t : stream) {
            if (t == 1) {
                if (cur != null) out.add(cur.toString());
                cur = new StringBuilder();
            } else {
                cur.append((char) (t - 3));
            }
        }
        if (cur != null) out.add(cur.toString());
        return out;
    }

    @Test
    void tokenCacheIsReusedRebuiltOnChangeAndValidated() throws IOException {
        write("t/x.txt", "hello world\n\nsecond doc".getBytes(StandardCharsets.UTF_8));
        TextCorpus corpus = TextCorpus.of(List.of(dir.resolve("t")), true);
        int[] calls = {0};
        TextEncoder counting = new TextEncoder() {
            @Override
            public int[] encode(String text) {
                calls[0]++;
                return TextEncoder.bytes(3).encode(text);
            }

            @Override
            public String id() {
                return "counting-bytes";
            }
        };
        Path cache = dir.resolve("cache/tokens.bin");
        TokenData a = TokenData.cached(cache, corpus, counting, 1, 2, 0.5, 9);
        assertThat(calls[0]).isEqualTo(2);
        assertThat(Files.exists(cache)).isTrue();
        TokenData b = TokenData.cached(cache, corpus, counting, 1, 2, 0.5, 9);
        assertThat(calls[0]).isEqualTo(2); // served from the cache
        assertThat(b.train()).containsExactly(a.train());
        assertThat(b.validation()).containsExactly(a.validation());
        assertThat(b.validationBytes()).isEqualTo(a.validationBytes());
        TokenData.cached(cache, corpus, counting, 1, 2, 0.5, 10); // other seed: rebuilt
        assertThat(calls[0]).isEqualTo(4);

        byte[] bytes = Files.readAllBytes(cache);
        bytes[bytes.length - 12] ^= 1;
        Files.write(cache, bytes);
        assertThatThrownBy(() -> TokenData.cached(cache, corpus, counting, 1, 2, 0.5, 10)).isInstanceOf(LatheException.class)
                .hasMessageContaining(cache.toString()).hasMessageContaining("checksum");
        Files.write(cache, Arrays.copyOf(bytes, 30));
        assertThatThrownBy(() -> TokenData.cached(cache, corpus, counting, 1, 2, 0.5, 10)).isInstanceOf(LatheException.class)
                .hasMessageContaining("token cache");
    }

    @Test
    void samplerVisitsEverySequenceOncePerEpochAndRestoresExactly() {
        int[] tokens = new int[10 * 8 + 1];
        for (int i = 0; i < tokens.length; i++) tokens[i] = i;
        SequenceSampler s = new SequenceSampler(tokens, 8, 3);
        assertThat(s.sequences()).isEqualTo(10);
        int[] in = new int[8], tg = new int[8];
        Set<Integer> starts = new HashSet<>();
        for (int i = 0; i < 10; i++) {
            s.next(in, tg, 0);
            starts.add(in[0]);
            for (int j = 0; j < 8; j++) assertThat(tg[j]).isEqualTo(in[j] + 1);
        }
        assertThat(starts).hasSize(10);
        s.next(in, tg, 0);
        s.next(in, tg, 0);
        assertThat(s.epoch()).isEqualTo(1);
        long st = s.epochStartState();
        int idx = s.index();
        List<Integer> rest = new ArrayList<>();
        for (int i = 0; i < 15; i++) {
            s.next(in, tg, 0);
            rest.add(in[0]);
        }
        SequenceSampler r = new SequenceSampler(tokens, 8, 3);
        r.restore(st, 1, idx);
        for (int i = 0; i < 15; i++) {
            r.next(in, tg, 0);
            assertThat(in[0]).isEqualTo(rest.get(i));
        }
    }
}
