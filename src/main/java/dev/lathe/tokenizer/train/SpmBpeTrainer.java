package dev.lathe.tokenizer.train;

import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufWriter;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;
import dev.lathe.tokenizer.Vocabulary;
import dev.lathe.train.TextCorpus;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * A SentencePiece-style BPE trainer with byte fallback, producing the Llama 2 vocabulary layout:
 * {@code <unk>}, {@code <s>}, {@code </s>}, the 256 byte tokens, the learnt merged pieces (best first, scores
 * -1, -2, ... in merge order) and the alphabet's single characters (scores below every merge).
 *
 * <p>Text is seen as the SPM tokenizer sees it: a space is prefixed to each document and spaces become
 * U+2581. Words are cut before every run of U+2581 that follows another character, so a word is
 * {@code ▁*} followed by non-space characters; no learnt piece can then span two words, and the SPM
 * tokenizer's merging inside one word does not depend on its neighbours. Distinct words are counted once;
 * the alphabet is the most frequent characters up to a coverage of {@link Options#characterCoverage()} (the
 * rest fall back to bytes). Then, repeatedly, the most frequent adjacent pair of pieces (ties broken by a
 * seeded hash) becomes a new piece, with pair counts updated incrementally over the words containing the
 * pair and a lazily updated priority queue.
 *
 * <p>Each word affected by a merge is re-segmented with exactly llama.cpp's SPM rule (repeatedly merge the
 * adjacent pair whose concatenation is the highest-scoring vocabulary entry, leftmost on ties), continuing
 * from its previous segmentation: this is the same as segmenting from scratch with the grown vocabulary,
 * because the new piece scores below every earlier one. So the trainer's segmentation of every word is, at
 * every step and at the end, the one Lathe's and llama.cpp's SPM tokenizers produce with the trained
 * vocabulary. Scores are distinct, so the merge order is unambiguous.
 */
public final class SpmBpeTrainer {
    /** First id of a learnt piece (after {@code <unk>}, {@code <s>}, {@code </s>} and 256 byte tokens). */
    public static final int FIRST_PIECE = 259;
    static final char SPACE = '\u2581';

    /**
     * @param vocabSize         total vocabulary size including the 259 special and byte tokens
     * @param characterCoverage share of character occurrences the alphabet must cover (sentencepiece: 0.9995)
     * @param maxPieceLength    longest piece in UTF-16 chars (sentencepiece: 16)
     * @param minPairCount      a pair seen fewer times is never merged
     * @param seed              breaks ties between equally frequent pairs
     */
    public record Options(int vocabSize, double characterCoverage, int maxPieceLength, int minPairCount, long seed) {
        public Options {
            if (vocabSize < FIRST_PIECE + 1) throw new LatheException("vocabulary size " + vocabSize + " is too small: it needs at least "
                    + (FIRST_PIECE + 1) + " (3 special tokens, 256 byte tokens and one piece)");
            if (!(characterCoverage > 0 && characterCoverage <= 1)) throw new LatheException("character coverage " + characterCoverage + " is not in (0, 1]");
            if (maxPieceLength < 2) throw new LatheException("maximum piece length " + maxPieceLength + " is below 2");
            if (minPairCount < 1) throw new LatheException("minimum pair count " + minPairCount + " is below 1");
        }

        public static Options of(int vocabSize, long seed) {
            return new Options(vocabSize, 0.9995, 16, 2, seed);
        }
    }

    /**
     * The trained vocabulary and what the trainer saw.
     *
     * @param merges       merged pieces learnt (in merge order, ids {@value #FIRST_PIECE}...)
     * @param alphabet     single-character pieces
     * @param words        word occurrences counted
     * @param uniqueWords  distinct words
     * @param characters   character occurrences counted
     */
    public record Result(Vocabulary vocabulary, List<String> merges, List<String> alphabet, long words, int uniqueWords,
                         long characters, Map<String, int[]> wordSegmentations) {
        public Tokenizer tokenizer() {
            return Tokenizers.create(vocabulary);
        }
    }

    /** Reports merges learnt so far (done, total). */
    public interface Listener {
        void progress(int done, int total);
    }

    private SpmBpeTrainer() {}

    // ------------------------------------------------------------------------------------------ counting

    /** Word counts of a corpus (each document with the SPM space prefix, spaces as U+2581). */
    public static Map<String, long[]> countWords(TextCorpus corpus) {
        Map<String, long[]> counts = new HashMap<>();
        corpus.forEach(d -> addWords(d.text(), counts));
        return counts;
    }

    /** Adds the words of one document to {@code counts}. */
    public static void addWords(String text, Map<String, long[]> counts) {
        if (text.isEmpty()) return;
        String s = SPACE + text.replace(' ', SPACE);
        int n = s.length();
        int start = 0;
        for (int i = 1; i <= n; i++) {
            if (i == n || (s.charAt(i) == SPACE && s.charAt(i - 1) != SPACE)) {
                counts.computeIfAbsent(s.substring(start, i), k -> new long[1])[0]++;
                start = i;
            }
        }
    }

    // ------------------------------------------------------------------------------------------ training

    /** Trains on a corpus (files read as strict UTF-8; bad input raises {@link LatheException}). */
    public static Result train(TextCorpus corpus, Options o, Listener listener) {
        Map<String, long[]> counts = countWords(corpus);
        if (counts.isEmpty()) throw new LatheException(corpus.files().get(0), "the corpus holds no text");
        return train(counts, o, listener, corpus.files().get(0));
    }

    /** Trains on word counts (as made by {@link #countWords}); {@code source} names the data in errors. */
    public static Result train(Map<String, long[]> wordCounts, Options o, Listener listener, Path source) {
        return new State(wordCounts, o, source).run(listener);
    }

    private static final class State {
        final Options o;
        final Path source;
        final String[] words;
        final long[] freq;
        final int[][] starts; // symbol start offsets, plus the word length at the end
        final int[][] ids;    // symbol ids (-1: a character outside the vocabulary)
        final StringIndex index = new StringIndex();
        final List<String> pieceText = new ArrayList<>(); // by id
        final List<Float> pieceScore = new ArrayList<>();
        final LongLongMap pairCount = new LongLongMap();
        final Map<Long, IntList> postings = new HashMap<>();
        final PriorityQueue<long[]> queue; // {count, tieBreak, pair}
        long totalWords, totalChars;
        final List<String> alphabet = new ArrayList<>();
        final List<String> merges = new ArrayList<>();

        State(Map<String, long[]> counts, Options o, Path source) {
            this.o = o;
            this.source = source;
            String[] ws = counts.keySet().toArray(new String[0]);
            Arrays.sort(ws);
            words = ws;
            freq = new long[ws.length];
            for (int i = 0; i < ws.length; i++) {
                freq[i] = counts.get(ws[i])[0];
                totalWords += freq[i];
            }
            starts = new int[ws.length][];
            ids = new int[ws.length][];
            queue = new PriorityQueue<>((a, b) -> a[0] != b[0] ? Long.compare(b[0], a[0])
                    : a[1] != b[1] ? Long.compare(a[1], b[1]) : Long.compare(a[2], b[2]));
            // the fixed part of the vocabulary: in the index so the trainer merges exactly as the tokenizer does
            Vocabulary fixed = Vocabulary.sentencePiece(List.of(), new float[0]);
            for (int i = 0; i < FIRST_PIECE; i++) addPiece(fixed.tokens()[i], fixed.scores()[i]);
        }

        int addPiece(String text, float score) {
            int id = pieceText.size();
            pieceText.add(text);
            pieceScore.add(score);
            index.put(text, id);
            return id;
        }

        Result run(Listener listener) {
            buildAlphabet();
            int target = o.vocabSize() - FIRST_PIECE - alphabet.size();
            for (int w = 0; w < words.length; w++) {
                initWord(w);
                addPairs(w, +1, null);
            }
            for (long pair : pairCount.keys()) push(pair, pairCount.get(pair));
            Map<Long, Long> before = new HashMap<>();
            while (merges.size() < target) {
                long[] top = queue.poll();
                if (top == null) break;
                long pair = top[2];
                long c = pairCount.get(pair);
                if (c != top[0]) {
                    if (c < top[0] && c > 0) push(pair, c);
                    continue;
                }
                if (c < o.minPairCount()) break;
                int l = (int) (pair >>> 32), r = (int) pair;
                String merged = pieceText.get(l) + pieceText.get(r);
                if (index.get(merged, 0, merged.length()) >= 0) { // a special or byte token's text: never merge
                    pairCount.put(pair, 0);
                    postings.remove(pair);
                    continue;
                }
                addPiece(merged, -(float) (merges.size() + 1));
                merges.add(merged);
                before.clear();
                IntList post = postings.remove(pair);
                int[] ws = post == null ? new int[0] : post.toArray();
                Arrays.sort(ws);
                int prevW = -1;
                for (int w : ws) {
                    if (w == prevW) continue;
                    prevW = w;
                    if (!contains(w, l, r)) continue;
                    int[] oldIds = ids[w], oldStarts = starts[w];
                    addPairs(w, -1, before);
                    resegment(w);
                    addPairs(w, +1, before);
                    addPostings(w, oldIds, oldStarts);
                }
                for (Map.Entry<Long, Long> e : before.entrySet()) {
                    long now = pairCount.get(e.getKey());
                    if (now > e.getValue()) push(e.getKey(), now);
                }
                if (listener != null) listener.progress(merges.size(), target);
            }
            if (merges.size() < target) {
                throw new LatheException(source, "a vocabulary of " + o.vocabSize() + " is larger than the data supports: only "
                        + merges.size() + " pairs occur at least " + o.minPairCount() + " times, so at most "
                        + (FIRST_PIECE + alphabet.size() + merges.size()) + " tokens can be learnt");
            }
            return result();
        }

        void buildAlphabet() {
            Map<Integer, long[]> cc = new HashMap<>();
            for (int w = 0; w < words.length; w++) {
                String s = words[w];
                for (int i = 0; i < s.length(); ) {
                    int cp = s.codePointAt(i);
                    cc.computeIfAbsent(cp, k -> new long[1])[0] += freq[w];
                    totalChars += freq[w];
                    i += Character.charCount(cp);
                }
            }
            Integer[] cps = cc.keySet().toArray(new Integer[0]);
            Arrays.sort(cps, (a, b) -> {
                long ca = cc.get(a)[0], cb = cc.get(b)[0];
                return ca != cb ? Long.compare(cb, ca) : Integer.compare(a, b);
            });
            long covered = 0;
            int budget = o.vocabSize() - FIRST_PIECE;
            for (int cp : cps) {
                if (alphabet.size() >= budget) break;
                if (!alphabet.isEmpty() && covered >= o.characterCoverage() * totalChars) break;
                String t = new String(Character.toChars(cp));
                if (index.get(t, 0, t.length()) >= 0) continue;
                alphabet.add(t);
                addPiece(t, 0f); // never the result of a merge, so its score plays no part while training
                covered += cc.get(cp)[0];
            }
        }

        void initWord(int w) {
            String s = words[w];
            int n = s.codePointCount(0, s.length());
            int[] st = new int[n + 1], id = new int[n];
            int k = 0;
            for (int i = 0; i < s.length(); ) {
                int cl = Character.charCount(s.codePointAt(i));
                st[k] = i;
                id[k] = index.get(s, i, cl);
                k++;
                i += cl;
            }
            st[n] = s.length();
            starts[w] = st;
            ids[w] = id;
            resegment(w);
        }

        /** llama.cpp's SPM merging, continued from the word's current symbols. */
        void resegment(int w) {
            String s = words[w];
            int[] st = starts[w], id = ids[w];
            int n = id.length;
            boolean changed = false;
            while (n > 1) {
                int best = -1, bestId = -1;
                float bestScore = Float.NEGATIVE_INFINITY;
                for (int i = 0; i + 1 < n; i++) {
                    int t = index.get(s, st[i], st[i + 2] - st[i]);
                    if (t < 0) continue;
                    float sc = pieceScore.get(t);
                    if (best < 0 || sc > bestScore) {
                        best = i;
                        bestId = t;
                        bestScore = sc;
                    }
                }
                if (best < 0) break;
                if (!changed) {
                    st = st.clone();
                    id = id.clone();
                    changed = true;
                }
                id[best] = bestId;
                System.arraycopy(id, best + 2, id, best + 1, n - best - 2);
                System.arraycopy(st, best + 2, st, best + 1, n - best - 1);
                n--;
            }
            if (changed) {
                ids[w] = Arrays.copyOf(id, n);
                starts[w] = Arrays.copyOf(st, n + 1);
            }
        }

        boolean contains(int w, int l, int r) {
            int[] id = ids[w];
            for (int i = 0; i + 1 < id.length; i++) if (id[i] == l && id[i + 1] == r) return true;
            return false;
        }

        boolean countable(int l, int r, int[] st, int i) {
            return l >= FIRST_PIECE && r >= FIRST_PIECE && st[i + 2] - st[i] <= o.maxPieceLength();
        }

        void addPairs(int w, int sign, Map<Long, Long> before) {
            int[] id = ids[w], st = starts[w];
            for (int i = 0; i + 1 < id.length; i++) {
                if (!countable(id[i], id[i + 1], st, i)) continue;
                long pair = ((long) id[i] << 32) | (id[i + 1] & 0xffffffffL);
                long old = pairCount.get(pair);
                if (before != null && !before.containsKey(pair)) before.put(pair, old);
                pairCount.put(pair, old + sign * freq[w]);
                if (before == null && sign > 0) posting(pair, w);
            }
        }

        /** Records w under each pair it has now but did not have before. */
        void addPostings(int w, int[] oldIds, int[] oldStarts) {
            int[] id = ids[w], st = starts[w];
            outer:
            for (int i = 0; i + 1 < id.length; i++) {
                if (!countable(id[i], id[i + 1], st, i)) continue;
                for (int j = 0; j + 1 < oldIds.length; j++) {
                    if (oldIds[j] == id[i] && oldIds[j + 1] == id[i + 1]) continue outer;
                }
                posting(((long) id[i] << 32) | (id[i + 1] & 0xffffffffL), w);
            }
        }

        void posting(long pair, int w) {
            IntList p = postings.computeIfAbsent(pair, k -> new IntList());
            if (p.n == 0 || p.a[p.n - 1] != w) p.add(w);
        }

        void push(long pair, long count) {
            long h = (pair ^ o.seed() * 0x9E3779B97F4A7C15L) * 0xBF58476D1CE4E5B9L;
            h ^= h >>> 31;
            queue.add(new long[] {count, h, pair});
        }

        Result result() {
            List<String> pieces = new ArrayList<>(merges);
            pieces.addAll(alphabet);
            float[] scores = new float[pieces.size()];
            for (int i = 0; i < scores.length; i++) scores[i] = -(float) (i + 1);
            Vocabulary v = Vocabulary.sentencePiece(pieces, scores);
            // trainer id -> vocabulary id: alphabet first in the trainer, merges first in the vocabulary
            int[] map = new int[pieceText.size()];
            for (int i = 0; i < FIRST_PIECE; i++) map[i] = i;
            for (int i = 0; i < alphabet.size(); i++) map[FIRST_PIECE + i] = FIRST_PIECE + merges.size() + i;
            for (int i = 0; i < merges.size(); i++) map[FIRST_PIECE + alphabet.size() + i] = FIRST_PIECE + i;
            Map<String, int[]> seg = new HashMap<>();
            for (int w = 0; w < words.length; w++) {
                int[] id = ids[w];
                int[] out = new int[id.length];
                for (int i = 0; i < id.length; i++) out[i] = id[i] < 0 ? -1 : map[id[i]];
                seg.put(words[w], out);
            }
            return new Result(v, List.copyOf(merges), List.copyOf(alphabet), totalWords, words.length, totalChars, seg);
        }
    }

    // ------------------------------------------------------------------------------------------ saving

    /** File names written by {@link #save}. */
    public static final String GGUF_METADATA = "tokenizer.gguf";

    /**
     * Writes tokenizer.json and tokenizer_config.json (Hugging Face, Llama 2 layout) and tokenizer.gguf (a GGUF
     * holding only the tokenizer.ggml.* keys) into {@code outDir}, each atomically.
     */
    public static void save(Vocabulary v, Path outDir) {
        try {
            Files.createDirectories(outDir);
        } catch (IOException e) {
            throw new LatheException(outDir, "cannot create folder: " + e.getMessage(), e);
        }
        Tokenizer t = Tokenizers.create(v);
        Tokenizers.writeHf(t, outDir);
        GgufWriter w = new GgufWriter();
        w.setString("general.architecture", "llama");
        w.setString("general.type", "vocab");
        for (Map.Entry<String, dev.lathe.io.gguf.GgufValue> e : Tokenizers.toGgufMetadata(t).entrySet()) w.set(e.getKey(), e.getValue());
        w.write(outDir.resolve(GGUF_METADATA));
    }

    // ------------------------------------------------------------------------------------------ helpers

    /** Open-addressing string → id map, looked up by a region of a string without allocating. */
    static final class StringIndex {
        private String[] keys = new String[1 << 10];
        private int[] vals = new int[1 << 10];
        private int size;

        void put(String k, int v) {
            if (2 * (size + 1) > keys.length) grow();
            int m = keys.length - 1;
            int i = mix(k.hashCode()) & m;
            while (keys[i] != null) {
                if (keys[i].equals(k)) {
                    vals[i] = v;
                    return;
                }
                i = (i + 1) & m;
            }
            keys[i] = k;
            vals[i] = v;
            size++;
        }

        int get(String s, int off, int len) {
            int h = 0;
            for (int i = 0; i < len; i++) h = 31 * h + s.charAt(off + i);
            int m = keys.length - 1;
            int i = mix(h) & m;
            while (keys[i] != null) {
                String k = keys[i];
                if (k.length() == len && k.regionMatches(0, s, off, len)) return vals[i];
                i = (i + 1) & m;
            }
            return -1;
        }

        private void grow() {
            String[] ok = keys;
            int[] ov = vals;
            keys = new String[ok.length * 2];
            vals = new int[ok.length * 2];
            size = 0;
            for (int i = 0; i < ok.length; i++) if (ok[i] != null) put(ok[i], ov[i]);
        }

        private static int mix(int h) {
            h *= 0x9E3779B9;
            return h ^ (h >>> 16);
        }
    }

    /** Open-addressing long → long map (missing keys read as 0). */
    static final class LongLongMap {
        private long[] keys = new long[1 << 12];
        private long[] vals = new long[1 << 12];
        private boolean[] used = new boolean[1 << 12];
        private int size;

        long get(long k) {
            int m = keys.length - 1;
            for (int i = mix(k) & m; used[i]; i = (i + 1) & m) if (keys[i] == k) return vals[i];
            return 0;
        }

        void put(long k, long v) {
            if (2 * (size + 1) > keys.length) grow();
            int m = keys.length - 1;
            int i = mix(k) & m;
            while (used[i]) {
                if (keys[i] == k) {
                    vals[i] = v;
                    return;
                }
                i = (i + 1) & m;
            }
            used[i] = true;
            keys[i] = k;
            vals[i] = v;
            size++;
        }

        long[] keys() {
            long[] out = new long[size];
            int n = 0;
            for (int i = 0; i < keys.length; i++) if (used[i]) out[n++] = keys[i];
            Arrays.sort(out);
            return out;
        }

        private void grow() {
            long[] ok = keys, ov = vals;
            boolean[] ou = used;
            keys = new long[ok.length * 2];
            vals = new long[ok.length * 2];
            used = new boolean[ok.length * 2];
            size = 0;
            for (int i = 0; i < ok.length; i++) if (ou[i]) put(ok[i], ov[i]);
        }

        private static int mix(long k) {
            k *= 0x9E3779B97F4A7C15L;
            return (int) (k ^ (k >>> 29));
        }
    }

    static final class IntList {
        int[] a = new int[4];
        int n;

        void add(int v) {
            if (n == a.length) a = Arrays.copyOf(a, n * 2);
            a[n++] = v;
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}
