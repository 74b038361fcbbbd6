package dev.lathe.train;

/** Turns text into token ids (the tokenizer package provides real ones; a byte-level one is built in). */
@FunctionalInterface
public interface TextEncoder {
    int[] encode(String text);

    /** Identifies the encoder in a token cache's fingerprint (change it when the encoding changes). */
    default String id() {
        return getClass().getName();
    }

    /**
     * A byte-level encoder: each UTF-8 byte b becomes id {@code offset + b} (offset 3 matches the tiny fixture
     * vocabularies: 0 unk, 1 BOS, 2 EOS, 3 + byte).
     */
    static TextEncoder bytes(int offset) {
        return new TextEncoder() {
            @Override
            public int[] encode(String text) {
                byte[] b = text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
                int[] ids = new int[b.length];
                for (int i = 0; i < b.length; i++) ids[i] = offset + (b[i] & 0xFF);
                return ids;
            }

            @Override
            public String id() {
                return "bytes+" + offset;
            }
        };
    }
}
