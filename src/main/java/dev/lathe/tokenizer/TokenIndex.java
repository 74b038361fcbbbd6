package dev.lathe.tokenizer;

import java.util.Arrays;

/**
 * Token text -> id without allocating: open addressing over the token strings, looked up by a range of a
 * char sequence. Of duplicate texts the last id wins (as llama.cpp's token_to_id map).
 */
final class TokenIndex {
    private final String[] tokens;
    private final int[] table;
    private final int mask;

    TokenIndex(String[] tokens) {
        this.tokens = tokens;
        int cap = Integer.highestOneBit(Math.max(4, tokens.length * 2 - 1)) << 1;
        this.table = new int[cap];
        this.mask = cap - 1;
        Arrays.fill(table, -1);
        for (int id = 0; id < tokens.length; id++) {
            String t = tokens[id];
            int h = mix(t.hashCode()) & mask;
            while (table[h] >= 0 && !tokens[table[h]].equals(t)) h = (h + 1) & mask;
            table[h] = id;
        }
    }

    private static int mix(int h) {
        return h ^ (h >>> 16) ^ (h >>> 7);
    }

    /** Id of {@code text[start, start+len)}, or -1. */
    int get(String text, int start, int len) {
        int h = 0;
        for (int i = start, end = start + len; i < end; i++) h = 31 * h + text.charAt(i);
        int slot = mix(h) & mask;
        while (true) {
            int id = table[slot];
            if (id < 0) return -1;
            String t = tokens[id];
            if (t.length() == len && t.regionMatches(0, text, start, len)) return id;
            slot = (slot + 1) & mask;
        }
    }

    int get(String text) {
        return get(text, 0, text.length());
    }
}
