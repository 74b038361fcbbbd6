package dev.lathe.tokenizer;

/** Token types as stored in GGUF {@code tokenizer.ggml.token_type} (llama.cpp's llama_token_type). */
public enum TokenType {
    UNDEFINED(0), NORMAL(1), UNKNOWN(2), CONTROL(3), USER_DEFINED(4), UNUSED(5), BYTE(6);

    public final int id;

    TokenType(int id) {
        this.id = id;
    }

    /** The type for a GGUF id; unknown ids map to UNDEFINED (as llama.cpp does). */
    public static TokenType byId(int id) {
        for (TokenType t : values()) if (t.id == id) return t;
        return UNDEFINED;
    }

    /** Control, user-defined and unknown tokens: split out of raw text before the tokenizer model runs. */
    public boolean isSpecial() {
        return this == CONTROL || this == USER_DEFINED || this == UNKNOWN;
    }
}
