package dev.lathe.tokenizer;

import dev.lathe.LatheException;

import java.nio.charset.StandardCharsets;
import java.util.PriorityQueue;

/**
 * llama.cpp's SPM tokenizer ({@code tokenizer.ggml.model = "llama"}): space prefix, ' ' -> U+2581, then
 * repeatedly merge the adjacent pair whose concatenation is the highest-scoring token (ties: leftmost), over
 * a linked list of symbols with a priority queue; symbols that are not tokens fall back to byte tokens.
 */
final class SpmTokenizer extends VocabTokenizer {
    static final char SPACE = '\u2581';

    private final float[] scores;
    private final int[] byteToken = new int[256];

    SpmTokenizer(Vocabulary v) {
        super(v);
        this.scores = v.scores();
        for (int b = 0; b < 256; b++) {
            Integer id = tokenToId.get(String.format("<0x%02X>", b));
            if (id == null && b < 0x80) id = tokenToId.get(String.valueOf((char) b));
            byteToken[b] = id != null ? id : v.unkId();
        }
    }

    @Override
    protected byte[] normalPiece(String token) {
        return token.replace(SPACE, ' ').getBytes(StandardCharsets.UTF_8);
    }

    private record Bigram(int left, int right, float score, int size) {}

    @Override
    protected void encodeFragment(String fragment, boolean prevSpecial, IntList out) {
        String text = (vocab.addSpacePrefix() && prevSpecial ? " " + fragment : fragment).replace(' ', SPACE);
        int len = text.length();
        // symbols = code points; start/length in chars, doubly linked
        int[] start = new int[len];
        int[] size = new int[len];
        int[] prev = new int[len];
        int[] next = new int[len];
        int n = 0;
        for (int i = 0; i < len; ) {
            int cl = Character.charCount(text.codePointAt(i));
            start[n] = i;
            size[n] = cl;
            prev[n] = n - 1;
            i += cl;
            next[n] = i == len ? -1 : n + 1;
            n++;
        }
        PriorityQueue<Bigram> queue = new PriorityQueue<>(Math.max(1, n),
                (x, y) -> x.score != y.score ? Float.compare(y.score, x.score) : Integer.compare(x.left, y.left));
        for (int i = 1; i < n; i++) tryAdd(text, start, size, i - 1, i, queue);
        while (!queue.isEmpty()) {
            Bigram b = queue.poll();
            int l = b.left, r = b.right;
            if (size[l] == 0 || size[r] == 0 || size[l] + size[r] != b.size) continue; // stale
            size[l] += size[r];
            size[r] = 0;
            next[l] = next[r];
            if (next[r] >= 0) prev[next[r]] = l;
            tryAdd(text, start, size, prev[l], l, queue);
            tryAdd(text, start, size, l, next[l], queue);
        }
        for (int i = n == 0 ? -1 : 0; i != -1; i = next[i]) {
            String sym = text.substring(start[i], start[i] + size[i]);
            Integer id = tokenToId.get(sym);
            if (id != null) {
                out.add(id);
            } else {
                // merged symbols are always tokens, so this is a single character: its UTF-8 bytes
                for (byte by : sym.getBytes(StandardCharsets.UTF_8)) {
                    int t = byteToken[by & 0xff];
                    if (t < 0) {
                        throw new LatheException("SPM vocabulary has neither a byte token nor <unk> for byte 0x"
                                + String.format("%02X", by & 0xff) + " (in '" + sym + "')");
                    }
                    out.add(t);
                }
            }
        }
    }

    private void tryAdd(String text, int[] start, int[] size, int left, int right, PriorityQueue<Bigram> queue) {
        if (left < 0 || right < 0) return;
        int total = size[left] + size[right];
        Integer id = tokenToId.get(text.substring(start[left], start[left] + total));
        if (id == null) return;
        queue.add(new Bigram(left, right, scores[id], total));
    }
}
