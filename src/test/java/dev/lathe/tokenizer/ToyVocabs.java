package dev.lathe.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Small vocabularies for tests, made here: the tiny-llama fixture vocabulary (unk, s, /s, 256 byte tokens),
 * and vocabularies with merges learned deterministically by plain BPE on a text, plus naive reference
 * encoders (no priority queue) to check the fast ones against.
 */
final class ToyVocabs {
    private ToyVocabs() {}

    /** The tiny-llama vocabulary of the fixtures README (section 3.1), built by hand. */
    static Vocabulary tinyLlama() {
        List<String> tokens = new ArrayList<>(List.of("<unk>", "<s>", "</s>"));
        List<TokenType> types = new ArrayList<>(List.of(TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL));
        for (int b = 0; b < 256; b++) {
            tokens.add(String.format("<0x%02X>", b));
            types.add(TokenType.BYTE);
        }
        return new Vocabulary(Vocabulary.SPM, "default", tokens.toArray(String[]::new), new float[tokens.size()],
                types.toArray(TokenType[]::new), null, 1, 2, 0, -1, -1, true, false, true, false, false, null);
    }

    /**
     * Learns {@code nMerges} merges by BPE on the words (symbol sequences, with counts): each step merges
     * the most frequent adjacent pair (ties: the smaller "left right" string).
     */
    static List<String[]> learnMerges(Map<List<String>, Integer> words, int nMerges) {
        Map<List<String>, Integer> cur = new LinkedHashMap<>(words);
        List<String[]> merges = new ArrayList<>();
        for (int step = 0; step < nMerges; step++) {
            Map<String, Integer> counts = new HashMap<>();
            for (Map.Entry<List<String>, Integer> e : cur.entrySet()) {
                List<String> w = e.getKey();
                for (int i = 0; i + 1 < w.size(); i++) counts.merge(w.get(i) + " " + w.get(i + 1), e.getValue(), Integer::sum);
            }
            String best = null;
            int bestCount = 0;
            for (Map.Entry<String, Integer> e : counts.entrySet()) {
                if (e.getValue() > bestCount || (e.getValue() == bestCount && e.getKey().compareTo(best) < 0)) {
                    best = e.getKey();
                    bestCount = e.getValue();
                }
            }
            if (best == null || bestCount < 2) break;
            int sp = best.indexOf(' ', 1);
            String l = best.substring(0, sp), r = best.substring(sp + 1);
            merges.add(new String[]{l, r});
            Map<List<String>, Integer> next = new LinkedHashMap<>();
            for (Map.Entry<List<String>, Integer> e : cur.entrySet()) {
                List<String> w = e.getKey(), o = new ArrayList<>();
                for (int i = 0; i < w.size(); i++) {
                    if (i + 1 < w.size() && w.get(i).equals(l) && w.get(i + 1).equals(r)) {
                        o.add(l + r);
                        i++;
                    } else {
                        o.add(w.get(i));
                    }
                }
                next.merge(o, e.getValue(), Integer::sum);
            }
            cur = next;
        }
        return merges;
    }

    static List<String> codePoints(String s) {
        List<String> out = new ArrayList<>();
        s.codePoints().forEach(c -> out.add(new String(Character.toChars(c))));
        return out;
    }

    /**
     * An SPM vocabulary learned on the text: unk, s, /s, 256 byte tokens, every character seen (score -1e6 - i),
     * then one piece per merge with score -rank (distinct scores).
     */
    static Vocabulary spmTrained(String text, int nMerges) {
        Map<List<String>, Integer> words = new LinkedHashMap<>();
        for (String w : ("\u2581" + text.replace(' ', '\u2581')).split("(?=\u2581)")) words.merge(codePoints(w), 1, Integer::sum);
        List<String[]> merges = learnMerges(words, nMerges);
        Vocabulary base = tinyLlama();
        List<String> tokens = new ArrayList<>(List.of(base.tokens()));
        List<TokenType> types = new ArrayList<>(List.of(base.types()));
        List<Float> scores = new ArrayList<>();
        for (int i = 0; i < tokens.size(); i++) scores.add(0f);
        java.util.TreeSet<String> chars = new java.util.TreeSet<>();
        for (List<String> w : words.keySet()) chars.addAll(w);
        int k = 0;
        for (String c : chars) {
            tokens.add(c);
            types.add(TokenType.NORMAL);
            scores.add(-1e6f - k++);
        }
        java.util.Set<String> seen = new java.util.HashSet<>(tokens);
        for (int r = 0; r < merges.size(); r++) {
            String piece = merges.get(r)[0] + merges.get(r)[1];
            if (!seen.add(piece)) continue;
            tokens.add(piece);
            types.add(TokenType.NORMAL);
            scores.add((float) -r);
        }
        float[] sc = new float[scores.size()];
        for (int i = 0; i < sc.length; i++) sc[i] = scores.get(i);
        return new Vocabulary(Vocabulary.SPM, "default", tokens.toArray(String[]::new), sc,
                types.toArray(TokenType[]::new), null, 1, 2, 0, -1, -1, true, false, true, false, false, null);
    }

    /**
     * A byte-level BPE vocabulary learned on the text pre-tokenized with {@code pre}: the 256 byte characters
     * (id = byte value), one token per merge, then the specials {@code <|endoftext|>} (control) and
     * {@code <|user|>} (user-defined).
     */
    static Vocabulary bpeTrained(String text, String pre, int nMerges) {
        Map<List<String>, Integer> words = new LinkedHashMap<>();
        for (String w : PreTokenizer.forName(pre).split(text)) words.merge(codePoints(ByteLevel.encode(w)), 1, Integer::sum);
        List<String[]> merges = learnMerges(words, nMerges);
        List<String> tokens = new ArrayList<>();
        for (int b = 0; b < 256; b++) tokens.add(String.valueOf(ByteLevel.byteToChar(b)));
        java.util.Set<String> seen = new java.util.HashSet<>(tokens);
        for (String[] m : merges) if (seen.add(m[0] + m[1])) tokens.add(m[0] + m[1]);
        List<TokenType> types = new ArrayList<>();
        for (int i = 0; i < tokens.size(); i++) types.add(TokenType.NORMAL);
        tokens.add("<|endoftext|>");
        types.add(TokenType.CONTROL);
        tokens.add("<|user|>");
        types.add(TokenType.USER_DEFINED);
        String[] ms = merges.stream().map(m -> m[0] + " " + m[1]).toArray(String[]::new);
        boolean[] flags = Tokenizers.bpeFlags(pre);
        int eot = tokens.size() - 2;
        return new Vocabulary(Vocabulary.BPE, pre, tokens.toArray(String[]::new), new float[tokens.size()],
                types.toArray(TokenType[]::new), ms, flags[0] ? eot : -1, eot, -1, -1, -1, flags[0], false, false,
                flags[1], flags[2], null);
    }

    /** Naive SPM: merge the best-scoring adjacent pair (ties: leftmost) until none is a token; bytes for the rest. */
    static List<Integer> naiveSpm(Vocabulary v, String fragment, boolean prefix) {
        Map<String, Integer> ids = new HashMap<>();
        for (int i = 0; i < v.size(); i++) ids.put(v.tokens()[i], i);
        if (fragment.isEmpty()) return new ArrayList<>(); // llama.cpp: no fragment, no space prefix
        List<String> syms = codePoints(((prefix ? " " : "") + fragment).replace(' ', '\u2581'));
        while (true) {
            int best = -1;
            float bestScore = 0;
            for (int i = 0; i + 1 < syms.size(); i++) {
                Integer id = ids.get(syms.get(i) + syms.get(i + 1));
                if (id != null && (best < 0 || v.scores()[id] > bestScore)) {
                    best = i;
                    bestScore = v.scores()[id];
                }
            }
            if (best < 0) break;
            syms.set(best, syms.get(best) + syms.remove(best + 1));
        }
        List<Integer> out = new ArrayList<>();
        for (String s : syms) {
            Integer id = ids.get(s);
            if (id != null) out.add(id);
            else for (byte b : s.getBytes(StandardCharsets.UTF_8)) out.add(ids.get(String.format("<0x%02X>", b & 0xff)));
        }
        return out;
    }

    /** Naive byte-level BPE of one pre-token: merge the lowest-rank adjacent pair (ties: leftmost). */
    private static final Map<Vocabulary, Map<String, Integer>> IDS = new java.util.concurrent.ConcurrentHashMap<>();
    private static final Map<Vocabulary, Map<String, Integer>> RANKS = new java.util.concurrent.ConcurrentHashMap<>();

    static List<Integer> naiveBpe(Vocabulary v, String preToken) {
        Map<String, Integer> ids = IDS.computeIfAbsent(v, x -> {
            Map<String, Integer> m = new HashMap<>();
            for (int i = 0; i < x.size(); i++) m.put(x.tokens()[i], i);
            return m;
        });
        Map<String, Integer> ranks = RANKS.computeIfAbsent(v, x -> {
            Map<String, Integer> m = new HashMap<>();
            for (int i = 0; i < x.merges().length; i++) m.putIfAbsent(x.merges()[i], i);
            return m;
        });
        List<String> syms = codePoints(ByteLevel.encode(preToken));
        if (v.ignoreMerges() && ids.containsKey(String.join("", syms))) return List.of(ids.get(String.join("", syms)));
        while (true) {
            int best = -1, bestRank = Integer.MAX_VALUE;
            for (int i = 0; i + 1 < syms.size(); i++) {
                Integer r = ranks.get(syms.get(i) + " " + syms.get(i + 1));
                if (r != null && r < bestRank) {
                    best = i;
                    bestRank = r;
                }
            }
            if (best < 0) break;
            syms.set(best, syms.get(best) + syms.remove(best + 1));
        }
        List<Integer> out = new ArrayList<>();
        for (String s : syms) out.add(ids.get(s));
        return out;
    }
}
