package dev.lathe.tokenizer;

import java.nio.charset.StandardCharsets;

/** GPT-2's reversible bytes-to-unicode alphabet (printable bytes map to themselves, the rest to U+0100..). */
public final class ByteLevel {
    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final int[] CHAR_TO_BYTE = new int[512];

    static {
        java.util.Arrays.fill(CHAR_TO_BYTE, -1);
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + n++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private ByteLevel() {}

    public static char byteToChar(int b) {
        return BYTE_TO_CHAR[b & 0xff];
    }

    /** The byte a character stands for, or -1 if it is not in the alphabet. */
    public static int charToByte(int c) {
        return c >= 0 && c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
    }

    /** UTF-8 bytes of the text, each written as its alphabet character. */
    public static String encode(String text) {
        byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
        char[] out = new char[utf8.length];
        for (int i = 0; i < utf8.length; i++) out[i] = BYTE_TO_CHAR[utf8[i] & 0xff];
        return new String(out);
    }

    /**
     * The bytes a byte-level token stands for; a token with a character outside the alphabet is taken as its
     * own UTF-8 bytes (as HF's ByteLevel decoder does).
     */
    public static byte[] decode(String token) {
        byte[] out = new byte[token.length()];
        for (int i = 0; i < token.length(); i++) {
            int b = charToByte(token.charAt(i));
            if (b < 0) return token.getBytes(StandardCharsets.UTF_8);
            out[i] = (byte) b;
        }
        return out;
    }
}
