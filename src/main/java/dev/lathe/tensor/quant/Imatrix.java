package dev.lathe.tensor.quant;

import dev.lathe.LatheException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An importance matrix in llama-imatrix's legacy binary format (llama.cpp c392e509): i32 n_entries, then
 * per entry i32 name length, name bytes, i32 ncall, i32 nval, f32 values[nval]; optionally i32 last_call,
 * i32 length and the dataset name. Values are loaded as llama-quantize's load_imatrix does: each divided
 * by ncall (when ncall > 0), giving the mean of x^2 per input column.
 */
public record Imatrix(Map<String, float[]> entries, int chunks, String dataset) {

    /** The per-column importance for tensor {@code name}, or null when the file has no entry for it. */
    public float[] get(String name) {
        return entries.get(name);
    }

    public static Imatrix readLegacy(Path file) {
        byte[] all;
        try {
            all = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new LatheException(file, "cannot read imatrix: " + e.getMessage(), e);
        }
        ByteBuffer b = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        try {
            int n = b.getInt();
            if (n < 1 || n > 1_000_000) throw new LatheException(file, "imatrix: bad entry count " + n);
            Map<String, float[]> m = new LinkedHashMap<>();
            for (int i = 0; i < n; i++) {
                int len = b.getInt();
                if (len < 0 || len > b.remaining()) throw new LatheException(file, "imatrix: bad name length " + len + " in entry " + i);
                byte[] name = new byte[len];
                b.get(name);
                int ncall = b.getInt();
                int nval = b.getInt();
                if (nval < 1 || (long) nval * 4 > b.remaining()) throw new LatheException(file, "imatrix: bad value count " + nval + " in entry " + i);
                float[] v = new float[nval];
                b.asFloatBuffer().get(v);
                b.position(b.position() + 4 * nval);
                for (int j = 0; j < nval; j++) {
                    if (!Float.isFinite(v[j])) throw new LatheException(file, "imatrix: non-finite value in entry " + new String(name, StandardCharsets.UTF_8));
                    if (ncall > 0) v[j] /= ncall;
                }
                m.put(new String(name, StandardCharsets.UTF_8), v);
            }
            int chunks = 0;
            String dataset = null;
            if (b.remaining() >= 8) {
                chunks = b.getInt();
                int len = b.getInt();
                if (len >= 0 && len <= b.remaining()) {
                    byte[] d = new byte[len];
                    b.get(d);
                    dataset = new String(d, StandardCharsets.UTF_8);
                }
            }
            return new Imatrix(Map.copyOf(m), chunks, dataset);
        } catch (java.nio.BufferUnderflowException e) {
            throw new LatheException(file, "imatrix: truncated file", e);
        }
    }
}
