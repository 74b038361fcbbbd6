package dev.lathe.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;

/** What SPM and BPE share: the token table, special-token splitting, pieces and decoding. */
abstract sealed class VocabTokenizer implements Tokenizer permits SpmTokenizer, BpeTokenizer {
    /** llama.cpp's texts of end-of-generation tokens. */
    private static final Set<String> EOG_TEXTS = Set.of("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
            "<|endoftext|>", "<|eom_id|>", "<EOT>");

    protected final Vocabulary vocab;
    protected final String[] tokens;
    protected final TokenType[] types;
    protected final Map<String, Integer> tokenToId;
    private final int[] specialOrder;
    private final byte[][] pieces;
    private final byte[][] specialPieces;
    private final Set<Integer> eog = new HashSet<>();

    VocabTokenizer(Vocabulary v) {
        this.vocab = v;
        this.tokens = v.tokens();
        int n = tokens.length;
        this.types = v.types().clone();
        this.tokenToId = HashMap.newHashMap(n);
        for (int i = 0; i < n; i++) tokenToId.put(tokens[i], i); // the last duplicate wins, as in llama.cpp
        // llama.cpp marks control-looking EOG tokens as control
        for (int i = 0; i < n; i++) {
            if (EOG_TEXTS.contains(tokens[i]) && tokenToId.get(tokens[i]) == i) {
                eog.add(i);
                types[i] = TokenType.CONTROL;
            }
        }
        if (v.eosId() >= 0) eog.add(v.eosId());
        if (v.eotId() >= 0) eog.add(v.eotId());
        List<Integer> special = new ArrayList<>();
        for (int i = 0; i < n; i++) if (types[i].isSpecial() && !tokens[i].isEmpty()) special.add(i);
        int[] byteLen = new int[n];
        for (int i : special) byteLen[i] = tokens[i].getBytes(StandardCharsets.UTF_8).length;
        special.sort((a, b) -> byteLen[a] != byteLen[b] ? Integer.compare(byteLen[b], byteLen[a]) : Integer.compare(a, b));
        this.specialOrder = special.stream().mapToInt(Integer::intValue).toArray();
        this.pieces = new byte[n][];
        this.specialPieces = new byte[n][];
        for (int i = 0; i < n; i++) {
            TokenType t = types[i];
            byte[] text = tokens[i].getBytes(StandardCharsets.UTF_8);
            specialPieces[i] = t == TokenType.CONTROL || t == TokenType.UNKNOWN ? text : null;
            pieces[i] = switch (t) {
                case CONTROL, UNKNOWN -> new byte[0];
                case USER_DEFINED -> text;
                case NORMAL -> normalPiece(tokens[i]);
                case BYTE -> bytePiece(i);
                default -> new byte[0]; // unused / undefined tokens print nothing, as in llama.cpp
            };
        }
    }

    /** Bytes of a NORMAL token. */
    protected abstract byte[] normalPiece(String token);

    /** Tokenizes one raw-text fragment (no specials inside) and appends the ids. */
    protected abstract void encodeFragment(String text, boolean prevSpecial, IntList out);

    private byte[] bytePiece(int id) {
        String t = tokens[id];
        if (t.length() == 6 && t.startsWith("<0x") && t.endsWith(">")) {
            try {
                return new byte[]{(byte) Integer.parseInt(t.substring(3, 5), 16)};
            } catch (NumberFormatException e) {
                // fall through
            }
        }
        return normalPiece(t); // a byte-typed token not spelled <0xXX>: take it as text
    }

    @Override
    public int[] encode(String text, boolean addBos, boolean parseSpecial) {
        IntList out = new IntList(Math.max(16, text.length() / 3));
        if (addBos && vocab.addBos()) out.add(vocab.bosId());
        boolean prevSpecial = true;
        for (Object frag : partition(text, parseSpecial)) {
            if (frag instanceof String s) {
                encodeFragment(s, prevSpecial, out);
                prevSpecial = false;
            } else {
                out.add((Integer) frag);
                prevSpecial = true;
            }
        }
        if (addBos && vocab.addEos()) out.add(vocab.eosId());
        return out.toArray();
    }

    /** Splits special tokens out of the text (llama.cpp tokenizer_st_partition): Strings and Integer ids. */
    List<Object> partition(String text, boolean parseSpecial) {
        List<Object> frags = new ArrayList<>();
        if (text.isEmpty()) return frags;
        frags.add(text);
        for (int id : specialOrder) {
            TokenType t = types[id];
            if (!parseSpecial && (t == TokenType.CONTROL || t == TokenType.UNKNOWN)) continue;
            String sp = tokens[id];
            List<Object> next = null;
            for (int f = 0; f < frags.size(); f++) {
                Object o = frags.get(f);
                int at = o instanceof String s ? s.indexOf(sp) : -1;
                if (at < 0) {
                    if (next != null) next.add(o);
                    continue;
                }
                if (next == null) next = new ArrayList<>(frags.subList(0, f));
                String s = (String) o;
                int pos = 0;
                while (at >= 0) {
                    if (at > pos) next.add(s.substring(pos, at));
                    next.add(id);
                    pos = at + sp.length();
                    at = s.indexOf(sp, pos);
                }
                if (pos < s.length()) next.add(s.substring(pos));
            }
            if (next != null) frags = next;
        }
        return frags;
    }

    @Override
    public String decode(int[] ids) {
        return decode(ids, false);
    }

    @Override
    public String decode(int[] ids, boolean renderSpecial) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(ids.length * 4);
        for (int id : ids) {
            byte[] p = pieceBytes(id, renderSpecial);
            out.write(p, 0, p.length);
        }
        byte[] b = out.toByteArray();
        if (vocab.cleanSpaces()) b = cleanSpaces(b);
        String text = finishText(new String(b, StandardCharsets.UTF_8));
        return vocab.addSpacePrefix() && text.startsWith(" ") ? text.substring(1) : text;
    }

    /**
     * SPM: U+2581 that came out of byte tokens is an escaped space too (llama.cpp only unescapes it inside
     * normal tokens); mapping it back makes {@code decode(encode(x)) == x} for text without a literal U+2581.
     */
    String finishText(String s) {
        return vocab.isSpm() ? s.replace(SpmTokenizer.SPACE, ' ') : s;
    }

    @Override
    public byte[] pieceBytes(int id, boolean renderSpecial) {
        checkRange(id);
        if (renderSpecial && specialPieces[id] != null) return specialPieces[id];
        return pieces[id];
    }

    /** llama.cpp's clean_up_tokenization_spaces (three passes over the bytes). */
    static byte[] cleanSpaces(byte[] t) {
        int total = t.length;
        if (total == 0) return t;
        t = t.clone();
        int n = 1;
        for (int i = 1; i < total; i++) { // " ?", " !", " .", " ,"
            byte x = t[i];
            if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) n--;
            t[n++] = x;
        }
        total = n;
        n = 1;
        for (int i = 1; i < total; i++) { // " ' " -> "'"
            byte x = t[i];
            if (x == '\'' && i + 1 < total && t[i - 1] == ' ' && t[i + 1] == ' ') {
                n--;
                t[++i] = 0;
            }
            t[n++] = x;
        }
        total = n;
        n = 1;
        for (int i = 1; i < total; i++) { // " 's", " 'm", " 're", " 've"
            byte x = t[i];
            if (t[i - 1] == ' ' && x == '\'' && i + 1 < total) {
                byte x1 = t[i + 1];
                if (x1 == 's' || x1 == 'm') n--;
                else if (i + 2 < total && ((x1 == 'r' && t[i + 2] == 'e') || (x1 == 'v' && t[i + 2] == 'e'))) n--;
            }
            t[n++] = x;
        }
        return Arrays.copyOf(t, n);
    }

    protected void checkRange(int id) {
        if (id < 0 || id >= tokens.length) throw new IllegalArgumentException("token id " + id + " outside 0.." + (tokens.length - 1));
    }

    @Override
    public int vocabSize() {
        return tokens.length;
    }

    @Override
    public String token(int id) {
        checkRange(id);
        return tokens[id];
    }

    @Override
    public OptionalInt id(String token) {
        Integer i = tokenToId.get(token);
        return i == null ? OptionalInt.empty() : OptionalInt.of(i);
    }

    @Override
    public TokenType type(int id) {
        checkRange(id);
        return types[id];
    }

    @Override
    public float score(int id) {
        checkRange(id);
        return vocab.scores()[id];
    }

    @Override
    public boolean isEog(int id) {
        return eog.contains(id);
    }

    @Override
    public int bosId() {
        return vocab.bosId();
    }

    @Override
    public int eosId() {
        return vocab.eosId();
    }

    @Override
    public int unkId() {
        return vocab.unkId();
    }

    @Override
    public int padId() {
        return vocab.padId();
    }

    @Override
    public boolean addBos() {
        return vocab.addBos();
    }

    @Override
    public boolean addEos() {
        return vocab.addEos();
    }

    @Override
    public Vocabulary vocabulary() {
        return vocab;
    }

    @Override
    public String toString() {
        return vocab.toString();
    }

    /** Growable int array. */
    static final class IntList {
        private int[] a;
        private int n;

        IntList(int cap) {
            a = new int[Math.max(cap, 4)];
        }

        void add(int v) {
            if (n == a.length) a = Arrays.copyOf(a, n * 2);
            a[n++] = v;
        }

        void addAll(int[] v) {
            if (n + v.length > a.length) a = Arrays.copyOf(a, Math.max(n * 2, n + v.length));
            System.arraycopy(v, 0, a, n, v.length);
            n += v.length;
        }

        int size() {
            return n;
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}
