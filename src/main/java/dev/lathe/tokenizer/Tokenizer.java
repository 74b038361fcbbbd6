package dev.lathe.tokenizer;

import java.util.OptionalInt;

/**
 * A LLaMA-family tokenizer behaving like llama.cpp's {@code llama_vocab} (SPM with byte fallback for
 * {@code tokenizer.ggml.model = "llama"}, byte-level BPE for {@code "gpt2"}). Build one with {@link Tokenizers}.
 */
public interface Tokenizer {

    /**
     * Tokenizes UTF-8 text like llama.cpp's {@code llama_tokenize}.
     *
     * @param addBos       llama.cpp's {@code add_special}: prepend BOS when the vocabulary asks for it
     *                     ({@link #addBos()}) and append EOS when it asks for that ({@link #addEos()})
     * @param parseSpecial when true, control and unknown tokens written in the text (e.g. {@code <s>},
     *                     {@code <|eot_id|>}) become their ids; user-defined tokens are always split out
     */
    int[] encode(String text, boolean addBos, boolean parseSpecial);

    /** {@code encode(text, true, false)}: the llama-perplexity / llama-tokenize default. */
    default int[] encode(String text) {
        return encode(text, true, false);
    }

    /**
     * Text of the ids: control and unknown tokens are dropped, byte tokens are joined into UTF-8 (invalid
     * sequences become U+FFFD), and when the vocabulary adds a space prefix the one leading space of the
     * text is removed (so {@code decode(encode(x)) == x} for SPM vocabularies, as with HF). In SPM vocabularies
     * every U+2581 in the output becomes a space, also one spelled with byte tokens (llama.cpp leaves those),
     * so a literal U+2581 in the encoded text comes back as a space. BPE vocabularies apply llama.cpp's
     * clean-up of spaces before punctuation when {@link Vocabulary#cleanSpaces()} is set.
     */
    String decode(int[] ids);

    /** Decodes with control tokens rendered as their text when {@code renderSpecial}. */
    String decode(int[] ids, boolean renderSpecial);

    /**
     * Raw bytes one token contributes to the output (llama.cpp {@code token_to_piece}, no lstrip): empty for
     * control/unknown tokens unless {@code renderSpecial}.
     */
    byte[] pieceBytes(int id, boolean renderSpecial);

    /** A stateful decoder for generation: pieces in, complete UTF-8 text out. */
    default StreamDecoder streamDecoder() {
        return new StreamDecoder(this, false);
    }

    int vocabSize();

    /** Token text as stored in the vocabulary (e.g. {@code ▁the}, {@code <0x0A>}, {@code Ġthe}). */
    String token(int id);

    /** Id of a token text, if present. */
    OptionalInt id(String token);

    TokenType type(int id);

    float score(int id);

    default boolean isControl(int id) {
        return type(id) == TokenType.CONTROL;
    }

    /** Control, user-defined or unknown token. */
    default boolean isSpecial(int id) {
        return type(id).isSpecial();
    }

    /** End-of-generation token (EOS, EOT, or one of llama.cpp's EOG texts such as {@code <|eot_id|>}). */
    boolean isEog(int id);

    /** BOS id or -1. */
    int bosId();

    /** EOS id or -1. */
    int eosId();

    /** Unknown-token id or -1. */
    int unkId();

    /** Padding id or -1. */
    int padId();

    boolean addBos();

    boolean addEos();

    /** The complete description (tokens, scores, types, merges, ids, flags), for writers. */
    Vocabulary vocabulary();
}
