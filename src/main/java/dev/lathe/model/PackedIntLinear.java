package dev.lathe.model;

import dev.lathe.LatheException;
import dev.lathe.tensor.VectorKernels;

/**
 * A linear layer stored as compressed-tensors' {@code pack-quantized} integers: {@code bits}-bit values in
 * [-2^(b-1), 2^(b-1)-1], stored offset by 2^(b-1) and packed densely into little-endian int32 words along
 * each row ({@code weight_packed [out, ceil(in*bits/32)]}, value i of a row at bits i*b ..); one scale per
 * group of {@code group} columns ({@code weight_scale [out, in/group]}) and, when asymmetric, integer zero
 * points ({@code weight_zero_point}, packed the same way along the output dimension). W = (q - z) * s.
 * Rows are decoded on the fly into a float buffer and multiplied with all input rows at once.
 */
public final class PackedIntLinear implements Linear {
    private final int out, in, bits, group, groups;
    private final int[] packed;
    private final int wordsPerRow;
    private final float[] scales;
    private final int[] zeros;
    private final Parallel pool;

    /**
     * @param packed  {@code out * ceil(in*bits/32)} words
     * @param scales  {@code out * in/group}
     * @param zeros   {@code out * in/group} unpacked zero points, or null when symmetric
     */
    public PackedIntLinear(int out, int in, int bits, int group, int[] packed, float[] scales, int[] zeros, Parallel pool) {
        if (bits < 1 || bits > 8) throw new LatheException("packed integer weights: " + bits + " bits");
        if (group < 1 || in % group != 0) throw new LatheException("packed integer weights: group " + group + " does not divide rows of " + in);
        this.out = out;
        this.in = in;
        this.bits = bits;
        this.group = group;
        this.groups = in / group;
        this.wordsPerRow = wordsFor(in, bits);
        if (packed.length != (long) out * wordsPerRow) throw new LatheException("packed integer weights: " + packed.length + " words, expected " + (long) out * wordsPerRow);
        if (scales.length != (long) out * groups) throw new LatheException("packed integer weights: " + scales.length + " scales, expected " + (long) out * groups);
        if (zeros != null && zeros.length != scales.length) throw new LatheException("packed integer weights: " + zeros.length + " zero points, expected " + scales.length);
        for (float s : scales) if (!Float.isFinite(s)) throw new LatheException("packed integer weights: non-finite scale");
        this.packed = packed;
        this.scales = scales;
        this.zeros = zeros;
        this.pool = pool;
    }

    /** int32 words for {@code n} values of {@code bits} bits, packed densely. */
    public static int wordsFor(int n, int bits) {
        return (int) (((long) n * bits + 31) / 32);
    }

    /** Packs signed values {@code v[off .. off+n)} (offset by 2^(bits-1)) densely into {@code words[wo ..]}. */
    public static void pack(int[] v, int off, int n, int bits, int[] words, int wo) {
        int offset = 1 << (bits - 1), mask = (1 << bits) - 1;
        for (int i = 0; i < n; i++) {
            long u = (v[off + i] + offset) & mask;
            long bit = (long) i * bits;
            int w = (int) (bit >>> 5), sh = (int) (bit & 31);
            words[wo + w] |= (int) (u << sh);
            if (sh + bits > 32) words[wo + w + 1] |= (int) (u >>> (32 - sh));
        }
    }

    /** Inverse of {@link #pack}. */
    public static void unpack(int[] words, int wo, int n, int bits, int[] v, int off) {
        int offset = 1 << (bits - 1), mask = (1 << bits) - 1;
        for (int i = 0; i < n; i++) {
            long bit = (long) i * bits;
            int w = (int) (bit >>> 5), sh = (int) (bit & 31);
            long x = (words[wo + w] & 0xFFFFFFFFL) >>> sh;
            if (sh + bits > 32) x |= (words[wo + w + 1] & 0xFFFFFFFFL) << (32 - sh);
            v[off + i] = (int) (x & mask) - offset;
        }
    }

    /** Decodes row {@code r} into {@code dst[0 .. in)}. */
    public void decodeRow(int r, int[] tmp, float[] dst) {
        unpack(packed, r * wordsPerRow, in, bits, tmp, 0);
        for (int g = 0; g < groups; g++) {
            float s = scales[r * groups + g];
            int z = zeros == null ? 0 : zeros[r * groups + g];
            for (int i = g * group; i < (g + 1) * group; i++) dst[i] = (tmp[i] - z) * s;
        }
    }

    /** All weights decoded ({@code [out, in]}). */
    public float[] dequantize() {
        float[] w = new float[out * in];
        int[] tmp = new int[in];
        float[] row = new float[in];
        for (int r = 0; r < out; r++) {
            decodeRow(r, tmp, row);
            System.arraycopy(row, 0, w, r * in, in);
        }
        return w;
    }

    @Override
    public int inFeatures() {
        return in;
    }

    @Override
    public int outFeatures() {
        return out;
    }

    @Override
    public void forward(float[] x, float[] y, int n) {
        pool.forRange(out, 8, (worker, from, to) -> {
            int[] tmp = new int[in];
            float[] row = new float[in];
            for (int r = from; r < to; r++) {
                decodeRow(r, tmp, row);
                for (int t = 0; t < n; t++) y[t * out + r] = VectorKernels.dotF32(row, 0, x, t * in, in);
            }
        });
    }

    @Override
    public long storageBytes() {
        return 4L * packed.length + 4L * scales.length + (zeros == null ? 0 : (long) wordsFor(zeros.length, bits) * 4);
    }

    @Override
    public String typeName() {
        return "int" + bits + (group == in ? "" : "-g" + group) + (zeros == null ? "" : "-asym");
    }
}
