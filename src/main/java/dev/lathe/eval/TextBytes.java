package dev.lathe.eval;

import dev.lathe.tokenizer.Tokenizer;

import java.io.ByteArrayOutputStream;

/** Byte counts for bits per byte: how many UTF-8 bytes of text the scored tokens stand for. */
public final class TextBytes {
    private TextBytes() {}

    /**
     * UTF-8 bytes of the text that the tokens perplexity scores under {@code o} stand for (the targets of each
     * chunk's second half), so that bits per byte = scored NLL / ln 2 / these bytes. The pieces of each
     * chunk's scored span are joined as the detokenizer would; in SentencePiece vocabularies a space that
     * fell back to the bytes of U+2581 (E2 96 81) counts as the one space byte it stands for.
     */
    public static long scoredBytes(Tokenizer tok, int[] ids, Perplexity.Options o) {
        int chunks = Perplexity.chunks(ids.length, o);
        int first = o.first();
        boolean spm = tok.vocabulary().isSpm();
        long bytes = 0;
        ByteArrayOutputStream span = new ByteArrayOutputStream();
        for (int c = 0; c < chunks; c++) {
            span.reset();
            for (int j = first + 1; j < o.nCtx(); j++) span.writeBytes(tok.pieceBytes(ids[c * o.nCtx() + j], false));
            byte[] b = span.toByteArray();
            bytes += b.length;
            if (spm) {
                for (int i = 0; i + 2 < b.length; i++) {
                    if (b[i] == (byte) 0xE2 && b[i + 1] == (byte) 0x96 && b[i + 2] == (byte) 0x81) {
                        bytes -= 2;
                        i += 2;
                    }
                }
            }
        }
        return bytes;
    }
}
