package dev.lathe.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Incremental detokenizer for generation: {@link #push(int)} returns the text that is complete so far and
 * keeps the bytes of a UTF-8 character split across byte tokens until its last byte arrives. Control tokens
 * print nothing; SPM's U+2581 prints as a space; no clean-up of spaces is applied (as llama.cpp's
 * token_to_piece in generation). Not thread-safe: one per generated sequence.
 */
public final class StreamDecoder {
    private final Tokenizer tokenizer;
    private final ByteArrayOutputStream pending = new ByteArrayOutputStream();
    private boolean stripLeadingSpace;

    /**
     * @param stripLeadingSpace drop one leading space of the first non-empty piece (for text that starts a
     *                          sequence in an SPM vocabulary with a space prefix)
     */
    public StreamDecoder(Tokenizer tokenizer, boolean stripLeadingSpace) {
        this.tokenizer = tokenizer;
        this.stripLeadingSpace = stripLeadingSpace;
    }

    /** Adds one token; returns the newly completed text (possibly empty). */
    public String push(int id) {
        byte[] piece = tokenizer.pieceBytes(id, false);
        pending.write(piece, 0, piece.length);
        byte[] buf = pending.toByteArray();
        int complete = completePrefix(buf);
        pending.reset();
        pending.write(buf, complete, buf.length - complete);
        return finish(new String(buf, 0, complete, StandardCharsets.UTF_8));
    }

    /** Returns whatever is still held (an unfinished sequence becomes U+FFFD) and empties the decoder. */
    public String flush() {
        byte[] buf = pending.toByteArray();
        pending.reset();
        return finish(new String(buf, StandardCharsets.UTF_8));
    }

    private String finish(String s) {
        if (s.isEmpty()) return s;
        if (tokenizer.vocabulary().isSpm()) s = s.replace('\u2581', ' ');
        if (stripLeadingSpace) {
            stripLeadingSpace = false;
            if (s.charAt(0) == ' ') s = s.substring(1);
        }
        return s;
    }

    /** Length of the longest prefix that does not end inside an unfinished (so far valid) UTF-8 sequence. */
    static int completePrefix(byte[] b) {
        int n = b.length;
        for (int back = 1; back <= 3 && back <= n; back++) {
            int c = b[n - back] & 0xff;
            if ((c & 0xC0) == 0x80) continue; // continuation byte, look further back
            int need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
            return need > back ? n - back : n;
        }
        return n;
    }
}
