package dev.lathe.tokenizer;

import dev.lathe.LatheException;

import java.nio.charset.StandardCharsets;

/**
 * llama.cpp's SPM tokenizer ({@code tokenizer.ggml.model = "llama"}): space prefix, ' ' -> U+2581, then
 * repeatedly merge the adjacent pair whose concatenation is the highest-scoring token (ties: leftmost), over
 * a linked list of symbols with a priority queue; symbols that are not tokens fall back to byte tokens.
 */
final class SpmTokenizer extends VocabTokenizer {
    static final char SPACE = '\u2581';

    private final float[] scores;
    private final TokenIndex index;
    private final int[] byteToken = new int[256];

    SpmTokenizer(Vocabulary v) {
        super(v);
        this.scores = v.scores();
        this.index = new TokenIndex(tokens);
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
        // queue entries are (score, left) only: an entry is acted on when (left, next[left]) still forms a
        // token of that score. llama.cpp keeps the pair size to drop outdated entries instead; the two agree
        // because the current pair always has its own entry with the same (score, left) key.
        LongHeap queue = new LongHeap(Math.max(16, n));
        for (int i = 1; i < n; i++) tryAdd(text, start, size, i - 1, i, queue);
        while (!queue.isEmpty()) {
            long key = queue.poll();
            int l = (int) key;
            float score = keyScore(key);
            int r = next[l];
            if (size[l] == 0 || r < 0) continue;
            int id = index.get(text, start[l], size[l] + size[r]);
            if (id < 0 || scores[id] != score) continue; // outdated
            size[l] += size[r];
            size[r] = 0;
            next[l] = next[r];
            if (next[r] >= 0) prev[next[r]] = l;
            tryAdd(text, start, size, prev[l], l, queue);
            tryAdd(text, start, size, l, next[l], queue);
        }
        for (int i = n == 0 ? -1 : 0; i != -1; i = next[i]) {
            int id = index.get(text, start[i], size[i]);
            if (id >= 0) {
                out.add(id);
            } else {
                // merged symbols are always tokens, so this is a single character: its UTF-8 bytes
                String sym = text.substring(start[i], start[i] + size[i]);
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

    /** Heap key: higher score first, then smaller left index. */
    private static long key(float score, int left) {
        int bits = Float.floatToIntBits(score + 0.0f); // -0.0 -> 0.0
        int sortable = bits ^ ((bits >> 31) & 0x7fffffff); // ascending int order = ascending float order
        return ((long) ~sortable << 32) | (left & 0xffffffffL);
    }

    private static float keyScore(long key) {
        int sortable = ~(int) (key >> 32);
        return Float.intBitsToFloat(sortable ^ ((sortable >> 31) & 0x7fffffff));
    }

    private void tryAdd(String text, int[] start, int[] size, int left, int right, LongHeap queue) {
        if (left < 0 || right < 0) return;
        int id = index.get(text, start[left], size[left] + size[right]);
        if (id < 0) return;
        queue.add(key(scores[id], left));
    }

    /** Binary min-heap of longs. */
    static final class LongHeap {
        private long[] a;
        private int n;

        LongHeap(int cap) {
            a = new long[cap];
        }

        boolean isEmpty() {
            return n == 0;
        }

        void add(long v) {
            if (n == a.length) a = java.util.Arrays.copyOf(a, n * 2);
            int i = n++;
            while (i > 0) {
                int p = (i - 1) >>> 1;
                if (a[p] <= v) break;
                a[i] = a[p];
                i = p;
            }
            a[i] = v;
        }

        long poll() {
            long top = a[0];
            long last = a[--n];
            int i = 0;
            while (true) {
                int c = 2 * i + 1;
                if (c >= n) break;
                if (c + 1 < n && a[c + 1] < a[c]) c++;
                if (last <= a[c]) break;
                a[i] = a[c];
                i = c;
            }
            if (n > 0) a[i] = last;
            return top;
        }
    }
}
