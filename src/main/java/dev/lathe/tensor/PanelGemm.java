package dev.lathe.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Matrix-matrix product (prefill) for {@link ActivationQuantizedCodec} weights of any type, keeping
 * llama.cpp's arithmetic model: the activations are quantized to the weight type's vec_dot type (Q8_0,
 * Q8_1 or Q8_K) by the caller, and every output is, up to float rounding, what
 * {@link ActivationQuantizedCodec#dotQuantized} returns for that weight row and quantized activation row.
 *
 * <p>Instead of integer block dots per (weight row, activation row) pair, both sides are turned into floats
 * once: each quantized activation row is <em>expanded</em> ({@link #expand}) to its dequantized values
 * {@code d * q} (plus, for the Q8_1 types that ask for it, one column per 32-block holding the stored fp16
 * sum {@code s} that ggml_vec_dot_q4_1_q8_1 multiplies with the weight block's min), and each panel of
 * weight rows is decoded with {@link ActivationQuantizedCodec#decodePrefillRow} to the matching columns.
 * The product is then a plain float GEMM over {@link #columns} columns, which {@link #kernel} computes in
 * register tiles of {@link #TILE} weight rows by {@link #lanes()} activation rows: the activations are
 * packed column-major per group of {@code lanes()} rows ({@code xp[g * cols * L + k * L + lane]}), so one
 * vector load of a column serves {@code TILE} fused multiply-adds with broadcast weights, and each tile's
 * outputs stay in registers over the whole row length. The exact integer block sums of dotQuantized are
 * replaced by float sums of exact products of dequantized values; the difference is float rounding (the
 * sums are not exact either way, since dotQuantized also scales and accumulates in float).
 *
 * <p>The kernel is written for any float vector species ({@code SPECIES_PREFERRED}: 16 lanes with AVX-512,
 * 8 with AVX2, 4 with NEON); {@link #kernelScalar} is the plain-Java fallback used below 4 lanes and the
 * reference in tests.
 */
public final class PanelGemm {
    private PanelGemm() {}

    /** The species of the kernel; its lane count is the number of activation rows per packed group. */
    static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    /** Weight rows per register tile. */
    public static final int TILE = 8;
    private static final boolean VECTOR = FS.length() >= 4;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Activation rows per packed group (the kernel's vector length, or 8 for the scalar kernel). */
    public static int lanes() {
        return VECTOR ? FS.length() : 8;
    }

    /** Number of float columns of a decoded weight row / expanded activation row of {@code n} values. */
    public static int columns(ActivationQuantizedCodec c, int n) {
        return n + (c.prefillUsesActivationSums() ? n / 32 : 0);
    }

    /**
     * Expands one row of {@code n} quantized activations (type {@code c.activationType()}, at
     * {@code xq + off}) into lane {@code lane} of a packed group starting at {@code xp[xpOff]}: column
     * {@code k} goes to {@code xp[xpOff + k * lanes + lane]}. Columns {@code [0, n)} hold {@code d * q};
     * when {@link ActivationQuantizedCodec#prefillUsesActivationSums} (Q8_1 only) column {@code n + b} holds
     * block {@code b}'s stored sum {@code s}.
     */
    public static void expand(ActivationQuantizedCodec c, MemorySegment xq, long off, int n, float[] xp, int xpOff, int lanes, int lane) {
        GgmlType at = c.activationType();
        if (n % at.blockSize != 0) throw new IllegalArgumentException(at + " activations need a multiple of " + at.blockSize + " values, got " + n);
        int p = xpOff + lane;
        switch (at) {
            case Q8_K -> {
                for (int b = 0, nb = n / 256; b < nb; b++) {
                    long o = off + 292L * b;
                    float d = xq.get(F32, o);
                    for (int j = 0; j < 256; j++, p += lanes) xp[p] = d * xq.get(ValueLayout.JAVA_BYTE, o + 4 + j);
                }
            }
            case Q8_0 -> {
                for (int b = 0, nb = n / 32; b < nb; b++) {
                    long o = off + 34L * b;
                    float d = Float.float16ToFloat(xq.get(I16, o));
                    for (int j = 0; j < 32; j++, p += lanes) xp[p] = d * xq.get(ValueLayout.JAVA_BYTE, o + 2 + j);
                }
            }
            case Q8_1 -> {
                int nb = n / 32;
                for (int b = 0; b < nb; b++) {
                    long o = off + 36L * b;
                    float d = Float.float16ToFloat(xq.get(I16, o));
                    for (int j = 0; j < 32; j++, p += lanes) xp[p] = d * xq.get(ValueLayout.JAVA_BYTE, o + 4 + j);
                }
                if (c.prefillUsesActivationSums()) {
                    for (int b = 0; b < nb; b++, p += lanes) xp[p] = Float.float16ToFloat(xq.get(I16, off + 36L * b + 2));
                }
            }
            default -> throw new IllegalArgumentException("not an activation type: " + at);
        }
    }

    /**
     * Packs the float rows of group {@code g} ({@code x} holds {@code n} rows of {@code cols}) into
     * {@code xp[g * cols * lanes() ..]}: column {@code k} of row {@code g * lanes() + lane} goes to
     * {@code xp[g * cols * lanes() + k * lanes() + lane]}; lanes past row {@code n} are zero.
     */
    public static void packRows(float[] x, int cols, int n, int g, float[] xp) {
        int lanes = lanes(), base = g * cols * lanes;
        for (int lane = 0; lane < lanes; lane++) {
            int row = g * lanes + lane;
            if (row >= n) {
                clearLane(xp, base, cols, lanes, lane);
                continue;
            }
            for (int k = 0, p = base + lane, xo = row * cols; k < cols; k++, p += lanes) xp[p] = x[xo + k];
        }
    }

    /**
     * A decoded panel of {@code wRows} weight rows ({@code w[wOff + r * cols ..]}, padded with zero rows to a
     * multiple of {@link #TILE}) times every packed group of {@code n} input rows ({@code xp}, as
     * {@link #packRows} or {@link #expand} lay them out): output row {@code i}, weight row {@code r} goes to
     * {@code y[i * yStride + yCol + r]}. Two groups per register tile where there are two; {@code tile}
     * holds {@code 2 * TILE * lanes()} floats.
     */
    public static void multiplyPanel(float[] w, int wOff, int wRows, int cols, float[] xp, int n, float[] y, int yCol, int yStride, float[] tile) {
        int lanes = lanes(), groups = (n + lanes - 1) / lanes, groupSize = cols * lanes;
        int g = 0;
        for (; g + 2 <= groups; g += 2) {
            int rows1 = Math.min(lanes, n - g * lanes), rows2 = Math.min(lanes, n - (g + 1) * lanes);
            for (int t = 0; t < wRows; t += TILE) {
                kernel2(w, wOff + t * cols, cols, xp, g * groupSize, (g + 1) * groupSize, Math.min(TILE, wRows - t), rows1, rows2,
                        y, g * lanes * yStride + yCol + t, (g + 1) * lanes * yStride + yCol + t, yStride, tile);
            }
        }
        if (g < groups) {
            for (int t = 0; t < wRows; t += TILE) {
                kernel(w, wOff + t * cols, cols, xp, g * groupSize, Math.min(TILE, wRows - t), Math.min(lanes, n - g * lanes),
                        y, g * lanes * yStride + yCol + t, yStride, tile);
            }
        }
    }

    /** Sets lane {@code lane} of {@code cols} columns of a packed group to zero (padding rows). */
    public static void clearLane(float[] xp, int xpOff, int cols, int lanes, int lane) {
        for (int k = 0, p = xpOff + lane; k < cols; k++, p += lanes) xp[p] = 0;
    }

    /**
     * One register tile: the dots of {@link #TILE} decoded weight rows (row {@code r} at
     * {@code w[wOff + r * cols]}) with one packed activation group ({@link #lanes()} rows at
     * {@code xp[xpOff]}), over {@code cols} columns. Output row {@code r}, lane {@code i} goes to
     * {@code y[yOff + i * yStride + r]} for {@code r < wRows}, {@code i < xRows}; the other tile entries are
     * computed (from whatever the padding holds) and dropped.
     */
    public static void kernel(float[] w, int wOff, int cols, float[] xp, int xpOff, int wRows, int xRows,
                              float[] y, int yOff, int yStride, float[] tile) {
        if (!VECTOR) {
            kernelScalar(w, wOff, cols, xp, xpOff, lanes(), wRows, xRows, y, yOff, yStride);
            return;
        }
        int L = FS.length();
        if (wOff < 0 || wOff + (long) TILE * cols > w.length) throw new IndexOutOfBoundsException("weights " + wOff + " + " + TILE + " x " + cols);
        if (xpOff < 0 || xpOff + (long) L * cols > xp.length) throw new IndexOutOfBoundsException("activations " + xpOff + " + " + L + " x " + cols);
        tile8(w, wOff, cols, xp, xpOff, tile);
        for (int r = 0; r < wRows; r++) {
            for (int i = 0; i < xRows; i++) y[yOff + i * yStride + r] = tile[r * L + i];
        }
    }

    /**
     * {@link #kernel} for two packed groups (at {@code xpOff} and {@code xpOff2}, {@code xRows} and
     * {@code xRows2} valid rows, outputs at {@code yOff} and {@code yOff2}); {@code tile} holds
     * {@code 2 * TILE * lanes()} floats. Uses the two-group register tile where the vectors have 16 lanes.
     */
    public static void kernel2(float[] w, int wOff, int cols, float[] xp, int xpOff, int xpOff2, int wRows, int xRows, int xRows2,
                               float[] y, int yOff, int yOff2, int yStride, float[] tile) {
        int L = FS.length();
        if (!VECTOR || L != 16) {
            kernel(w, wOff, cols, xp, xpOff, wRows, xRows, y, yOff, yStride, tile);
            kernel(w, wOff, cols, xp, xpOff2, wRows, xRows2, y, yOff2, yStride, tile);
            return;
        }
        if (wOff < 0 || wOff + (long) TILE * cols > w.length) throw new IndexOutOfBoundsException("weights " + wOff + " + " + TILE + " x " + cols);
        for (int o : new int[]{xpOff, xpOff2}) {
            if (o < 0 || o + (long) L * cols > xp.length) throw new IndexOutOfBoundsException("activations " + o + " + " + L + " x " + cols);
        }
        tile8x2(w, wOff, cols, xp, xpOff, xpOff2, tile);
        for (int r = 0; r < wRows; r++) {
            for (int i = 0; i < xRows; i++) y[yOff + i * yStride + r] = tile[r * L + i];
            for (int i = 0; i < xRows2; i++) y[yOff2 + i * yStride + r] = tile[(TILE + r) * L + i];
        }
    }

    /**
     * The vector tile: 8 accumulators of {@code L} lanes; per column one vector load of activations and 8
     * broadcast weights. Kept free of scalar loops so C2 keeps the accumulators in registers.
     */
    private static void tile8(float[] w, int w0, int cols, float[] xp, int x0, float[] tile) {
        int L = FS.length();
        FloatVector a0 = FloatVector.zero(FS), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        int w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols, w4 = w3 + cols, w5 = w4 + cols, w6 = w5 + cols, w7 = w6 + cols;
        for (int k = 0; k < cols; k++) {
            FloatVector x = FloatVector.fromArray(FS, xp, x0 + k * L);
            a0 = x.fma(FloatVector.broadcast(FS, w[w0 + k]), a0);
            a1 = x.fma(FloatVector.broadcast(FS, w[w1 + k]), a1);
            a2 = x.fma(FloatVector.broadcast(FS, w[w2 + k]), a2);
            a3 = x.fma(FloatVector.broadcast(FS, w[w3 + k]), a3);
            a4 = x.fma(FloatVector.broadcast(FS, w[w4 + k]), a4);
            a5 = x.fma(FloatVector.broadcast(FS, w[w5 + k]), a5);
            a6 = x.fma(FloatVector.broadcast(FS, w[w6 + k]), a6);
            a7 = x.fma(FloatVector.broadcast(FS, w[w7 + k]), a7);
        }
        a0.intoArray(tile, 0);
        a1.intoArray(tile, L);
        a2.intoArray(tile, 2 * L);
        a3.intoArray(tile, 3 * L);
        a4.intoArray(tile, 4 * L);
        a5.intoArray(tile, 5 * L);
        a6.intoArray(tile, 6 * L);
        a7.intoArray(tile, 7 * L);
    }

    /**
     * Two packed groups at once ({@code xp[x0 ..]} and {@code xp[x1 ..]}): 16 accumulators, per column two
     * vector loads and 8 broadcasts for 16 fused multiply-adds (for 32-register AVX-512). The 8 x L outputs
     * of the second group go to {@code tile[8 * L ..]}.
     */
    private static void tile8x2(float[] w, int w0, int cols, float[] xp, int x0, int x1, float[] tile) {
        int L = FS.length();
        FloatVector a0 = FloatVector.zero(FS), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
        int w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols, w4 = w3 + cols, w5 = w4 + cols, w6 = w5 + cols, w7 = w6 + cols;
        for (int k = 0; k < cols; k++) {
            FloatVector x = FloatVector.fromArray(FS, xp, x0 + k * L), z = FloatVector.fromArray(FS, xp, x1 + k * L);
            FloatVector v = FloatVector.broadcast(FS, w[w0 + k]);
            a0 = x.fma(v, a0);
            b0 = z.fma(v, b0);
            v = FloatVector.broadcast(FS, w[w1 + k]);
            a1 = x.fma(v, a1);
            b1 = z.fma(v, b1);
            v = FloatVector.broadcast(FS, w[w2 + k]);
            a2 = x.fma(v, a2);
            b2 = z.fma(v, b2);
            v = FloatVector.broadcast(FS, w[w3 + k]);
            a3 = x.fma(v, a3);
            b3 = z.fma(v, b3);
            v = FloatVector.broadcast(FS, w[w4 + k]);
            a4 = x.fma(v, a4);
            b4 = z.fma(v, b4);
            v = FloatVector.broadcast(FS, w[w5 + k]);
            a5 = x.fma(v, a5);
            b5 = z.fma(v, b5);
            v = FloatVector.broadcast(FS, w[w6 + k]);
            a6 = x.fma(v, a6);
            b6 = z.fma(v, b6);
            v = FloatVector.broadcast(FS, w[w7 + k]);
            a7 = x.fma(v, a7);
            b7 = z.fma(v, b7);
        }
        a0.intoArray(tile, 0);
        a1.intoArray(tile, L);
        a2.intoArray(tile, 2 * L);
        a3.intoArray(tile, 3 * L);
        a4.intoArray(tile, 4 * L);
        a5.intoArray(tile, 5 * L);
        a6.intoArray(tile, 6 * L);
        a7.intoArray(tile, 7 * L);
        b0.intoArray(tile, 8 * L);
        b1.intoArray(tile, 9 * L);
        b2.intoArray(tile, 10 * L);
        b3.intoArray(tile, 11 * L);
        b4.intoArray(tile, 12 * L);
        b5.intoArray(tile, 13 * L);
        b6.intoArray(tile, 14 * L);
        b7.intoArray(tile, 15 * L);
    }

    /** Plain-Java {@link #kernel} for packed groups of {@code lanes} rows (fallback and test reference). */
    public static void kernelScalar(float[] w, int wOff, int cols, float[] xp, int xpOff, int lanes, int wRows, int xRows,
                                    float[] y, int yOff, int yStride) {
        for (int r = 0; r < wRows; r++) {
            int wr = wOff + r * cols;
            for (int i = 0; i < xRows; i++) {
                float s = 0;
                for (int k = 0, p = xpOff + i; k < cols; k++, p += lanes) s = Math.fma(w[wr + k], xp[p], s);
                y[yOff + i * yStride + r] = s;
            }
        }
    }
}
