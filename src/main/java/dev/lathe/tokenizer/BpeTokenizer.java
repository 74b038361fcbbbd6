package dev.lathe.tokenizer;

import java.util.HashMap;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.concurrent.ConcurrentHashMap;

/**
 * llama.cpp's byte-level BPE tokenizer ({@code tokenizer.ggml.model = "gpt2"}): regex pre-tokenization, each
 * piece's UTF-8 bytes written in the bytes-to-unicode alphabet, then repeatedly merge the adjacent pair with
 * the lowest merge rank (ties: leftmost). Results are cached per pre-token.
 */
final class BpeTokenizer extends VocabTokenizer {
    private static final int CACHE_LIMIT = 1 << 16;
    private static final int[] EMPTY = new int[0];

    private final PreTokenizer preTokenizer;
    private final Map<String, Integer> ranks;
    private final Map<String, int[]> cache = new ConcurrentHashMap<>();

    BpeTokenizer(Vocabulary v) {
        super(v);
        this.preTokenizer = v.pre() != null ? PreTokenizer.forName(v.pre()) : PreTokenizer.of(v.customRegexes());
        String[] merges = v.merges();
        this.ranks = HashMap.newHashMap(merges.length);
        for (int i = 0; i < merges.length; i++) {
            String m = merges[i];
            int sp = m.indexOf(' ', 1);
            ranks.putIfAbsent(m.substring(0, sp) + ' ' + m.substring(sp + 1), i);
        }
    }

    PreTokenizer preTokenizer() {
        return preTokenizer;
    }

    @Override
    protected byte[] normalPiece(String token) {
        return ByteLevel.decode(token);
    }

    @Override
    protected void encodeFragment(String text, boolean prevSpecial, IntList out) {
        for (String word : preTokenizer.split(text)) {
            String mapped = ByteLevel.encode(word);
            int[] ids = cache.get(mapped);
            if (ids == null) {
                ids = bpe(mapped);
                if (cache.size() >= CACHE_LIMIT) cache.clear();
                cache.put(mapped, ids);
            }
            out.addAll(ids);
        }
    }

    private record Bigram(int left, int right, String text, int rank) {}

    private int rank(String left, String right) {
        Integer r = ranks.get(left + ' ' + right);
        return r == null ? -1 : r;
    }

    /** BPE of one byte-level-encoded pre-token (every char is one symbol to start with). */
    int[] bpe(String word) {
        if (word.isEmpty()) return EMPTY;
        if (vocab.ignoreMerges()) {
            Integer whole = tokenToId.get(word);
            if (whole != null) return new int[]{whole};
        }
        int n = word.length();
        int[] start = new int[n], size = new int[n], prev = new int[n], next = new int[n];
        for (int i = 0; i < n; i++) {
            start[i] = i;
            size[i] = 1;
            prev[i] = i - 1;
            next[i] = i + 1 == n ? -1 : i + 1;
        }
        PriorityQueue<Bigram> queue = new PriorityQueue<>(n,
                (x, y) -> x.rank != y.rank ? Integer.compare(x.rank, y.rank) : Integer.compare(x.left, y.left));
        for (int i = 1; i < n; i++) addBigram(word, start, size, i - 1, i, queue);
        while (!queue.isEmpty()) {
            Bigram b = queue.poll();
            int l = b.left, r = b.right;
            if (size[l] == 0 || size[r] == 0) continue;
            if (size[l] + size[r] != b.text.length() || !word.startsWith(b.text, start[l])) continue; // outdated
            size[l] += size[r];
            size[r] = 0;
            next[l] = next[r];
            if (next[r] >= 0) prev[next[r]] = l;
            addBigram(word, start, size, prev[l], l, queue);
            addBigram(word, start, size, l, next[l], queue);
        }
        IntList out = new IntList(n);
        for (int i = 0; i != -1; i = next[i]) {
            String sym = word.substring(start[i], start[i] + size[i]);
            Integer id = tokenToId.get(sym);
            if (id != null) {
                out.add(id);
            } else {
                // llama.cpp looks the symbol's single bytes up; only ASCII characters can match
                for (int k = 0; k < sym.length(); k++) {
                    char c = sym.charAt(k);
                    Integer b = c < 0x80 ? tokenToId.get(String.valueOf(c)) : null;
                    if (b != null) out.add(b);
                }
            }
        }
        return out.toArray();
    }

    private void addBigram(String word, int[] start, int[] size, int left, int right, PriorityQueue<Bigram> queue) {
        if (left < 0 || right < 0) return;
        String l = word.substring(start[left], start[left] + size[left]);
        String r = word.substring(start[right], start[right] + size[right]);
        int rank = rank(l, r);
        if (rank < 0) return;
        queue.add(new Bigram(left, right, l + r, rank));
    }
}
