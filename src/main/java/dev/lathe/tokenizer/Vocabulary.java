package dev.lathe.tokenizer;

import dev.lathe.LatheException;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;

/**
 * Everything that defines a tokenizer, in GGUF terms.
 *
 * @param model          {@link #SPM} ("llama": scores-driven merges, byte fallback) or {@link #BPE} ("gpt2")
 * @param pre            pre-tokenizer name as in {@code tokenizer.ggml.pre} ("default", "llama-bpe", "qwen2",
 *                       "smollm", "gpt-2", ...); for BPE vocabularies loaded from a tokenizer.json whose regex is
 *                       not one llama.cpp knows, null and {@link #customRegexes} holds the regexes
 * @param tokens         token texts (byte-level BPE: in the bytes-to-unicode alphabet)
 * @param scores         one score per token (SPM merge priority; 0 for BPE)
 * @param types          one type per token
 * @param merges         BPE merges "left right" in rank order (empty for SPM)
 * @param bosId          BOS id or -1
 * @param eosId          EOS id or -1
 * @param unkId          unknown id or -1
 * @param padId          padding id or -1
 * @param eotId          end-of-turn id or -1
 * @param addBos         add BOS when encoding with add_special
 * @param addEos         add EOS when encoding with add_special
 * @param addSpacePrefix SPM: prepend a space to text at the start / after a special token
 * @param ignoreMerges   BPE: a pre-token that is itself a token is emitted whole (llama3)
 * @param cleanSpaces    llama.cpp clean_up_tokenization_spaces on decode (BPE)
 * @param customRegexes  BPE pre-tokenizer regexes (Java syntax) used when {@code pre} is null
 */
public record Vocabulary(String model, String pre, String[] tokens, float[] scores, TokenType[] types, String[] merges,
                         int bosId, int eosId, int unkId, int padId, int eotId,
                         boolean addBos, boolean addEos, boolean addSpacePrefix, boolean ignoreMerges,
                         boolean cleanSpaces, String[] customRegexes) {

    public static final String SPM = "llama";
    public static final String BPE = "gpt2";

    public Vocabulary {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(tokens, "tokens");
        if (merges == null) merges = new String[0];
        if (customRegexes == null) customRegexes = new String[0];
    }

    /**
     * The Llama 2 SentencePiece layout: {@code <unk>} (0), {@code <s>} (1, BOS), {@code </s>} (2, EOS), the 256
     * byte tokens {@code <0x00>..<0xFF>} (3..258), then the given pieces (normal tokens, spaces written as
     * U+2581) with their scores (higher merges first). BOS is added, EOS not, a space is prefixed.
     */
    public static Vocabulary sentencePiece(java.util.List<String> pieces, float[] pieceScores) {
        if (pieceScores.length != pieces.size()) {
            throw new IllegalArgumentException(pieces.size() + " pieces but " + pieceScores.length + " scores");
        }
        int n = 259 + pieces.size();
        String[] tokens = new String[n];
        float[] scores = new float[n];
        TokenType[] types = new TokenType[n];
        tokens[0] = "<unk>";
        types[0] = TokenType.UNKNOWN;
        tokens[1] = "<s>";
        types[1] = TokenType.CONTROL;
        tokens[2] = "</s>";
        types[2] = TokenType.CONTROL;
        for (int b = 0; b < 256; b++) {
            tokens[3 + b] = String.format("<0x%02X>", b);
            types[3 + b] = TokenType.BYTE;
        }
        for (int i = 0; i < pieces.size(); i++) {
            tokens[259 + i] = pieces.get(i);
            scores[259 + i] = pieceScores[i];
            types[259 + i] = TokenType.NORMAL;
        }
        return new Vocabulary(SPM, "default", tokens, scores, types, null, 1, 2, 0, -1, -1, true, false, true, false,
                false, null);
    }

    public int size() {
        return tokens.length;
    }

    public boolean isSpm() {
        return SPM.equals(model);
    }

    /** A copy with other special ids / flags. */
    public Vocabulary withSpecials(int bos, int eos, int unk, int pad, boolean addBos, boolean addEos) {
        return new Vocabulary(model, pre, tokens, scores, types, merges, bos, eos, unk, pad, eotId, addBos, addEos,
                addSpacePrefix, ignoreMerges, cleanSpaces, customRegexes);
    }

    /** Checks lengths, ids and the model name; {@code source} names the file in the error. */
    public void validate(Path source) {
        if (!SPM.equals(model) && !BPE.equals(model)) {
            throw new LatheException(source, "unknown tokenizer model '" + model + "' (supported: llama, gpt2)");
        }
        int n = tokens.length;
        if (n == 0) throw new LatheException(source, "tokenizer has an empty vocabulary");
        if (scores == null || scores.length != n) {
            throw new LatheException(source, "tokenizer scores: " + (scores == null ? "missing" : scores.length + " entries")
                    + " for " + n + " tokens");
        }
        if (types == null || types.length != n) {
            throw new LatheException(source, "tokenizer token types: " + (types == null ? "missing" : types.length + " entries")
                    + " for " + n + " tokens");
        }
        for (int i = 0; i < n; i++) {
            if (tokens[i] == null) throw new LatheException(source, "tokenizer token " + i + " is null");
            if (types[i] == null) throw new LatheException(source, "tokenizer token type " + i + " is null");
            if (!Float.isFinite(scores[i])) throw new LatheException(source, "tokenizer score of token " + i + " is " + scores[i]);
        }
        checkId(source, "bos", bosId, n);
        checkId(source, "eos", eosId, n);
        checkId(source, "unknown", unkId, n);
        checkId(source, "padding", padId, n);
        checkId(source, "eot", eotId, n);
        if (addBos && bosId < 0) throw new LatheException(source, "tokenizer adds BOS but has no BOS token");
        if (addEos && eosId < 0) throw new LatheException(source, "tokenizer adds EOS but has no EOS token");
        if (BPE.equals(model)) {
            for (int i = 0; i < merges.length; i++) {
                String m = merges[i];
                if (m == null || m.indexOf(' ', 1) < 0) {
                    throw new LatheException(source, "tokenizer merge " + i + " is not 'left right': " + m);
                }
            }
            if (pre == null && customRegexes.length == 0) {
                throw new LatheException(source, "BPE tokenizer without a pre-tokenizer");
            }
        }
    }

    private static void checkId(Path source, String what, int id, int n) {
        if (id < -1 || id >= n) throw new LatheException(source, "tokenizer " + what + " token id " + id + " outside 0.." + (n - 1));
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Vocabulary v)) return false;
        return model.equals(v.model) && Objects.equals(pre, v.pre) && Arrays.equals(tokens, v.tokens)
                && Arrays.equals(scores, v.scores) && Arrays.equals(types, v.types) && Arrays.equals(merges, v.merges)
                && bosId == v.bosId && eosId == v.eosId && unkId == v.unkId && padId == v.padId && eotId == v.eotId
                && addBos == v.addBos && addEos == v.addEos && addSpacePrefix == v.addSpacePrefix
                && ignoreMerges == v.ignoreMerges && cleanSpaces == v.cleanSpaces && Arrays.equals(customRegexes, v.customRegexes);
    }

    @Override
    public int hashCode() {
        return Objects.hash(model, pre, Arrays.hashCode(tokens), Arrays.hashCode(scores), bosId, eosId);
    }

    @Override
    public String toString() {
        return "Vocabulary[" + model + (pre == null ? "" : "/" + pre) + ", " + tokens.length + " tokens, "
                + merges.length + " merges, bos=" + bosId + ", eos=" + eosId + "]";
    }
}
