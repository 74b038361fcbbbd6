package dev.lathe.train;

import java.util.Arrays;

/**
 * Which elements of one parameter tensor may be non-zero: a bit per element, set = trainable, clear = held at
 * exactly zero. A {@link Trainer} with masks zeroes the masked gradient entries before clipping and the
 * optimizer step, and zeroes the masked weights again after the step, so neither weight decay nor the Adam
 * moments can revive a pruned weight, and any structure the zeros form (N:M groups, whole rows) is kept.
 * Generic: nothing here knows about pruning; a mask can come from the zeros of a pruned tensor
 * ({@link #ofNonZeros}) or be built element by element.
 */
public final class ParamMask {
    private final int size;
    private final long[] bits; // bit i of word i>>>6 set: element i is free

    private ParamMask(int size, long[] bits) {
        this.size = size;
        this.bits = bits;
    }

    /** A mask with every element free (nothing masked). */
    public static ParamMask allFree(int size) {
        if (size < 0) throw new IllegalArgumentException("size " + size);
        long[] b = new long[(size + 63) >>> 6];
        Arrays.fill(b, -1L);
        if ((size & 63) != 0 && b.length > 0) b[b.length - 1] = (1L << (size & 63)) - 1;
        return new ParamMask(size, b);
    }

    /** Free where {@code values[i] != 0} (so -0.0 counts as zero), masked where it is exactly zero. */
    public static ParamMask ofNonZeros(float[] values) {
        long[] b = new long[(values.length + 63) >>> 6];
        for (int i = 0; i < values.length; i++) {
            if (values[i] != 0f) b[i >>> 6] |= 1L << (i & 63);
        }
        return new ParamMask(values.length, b);
    }

    /** Free where {@code keep[i] != 0}: the inverse of {@link #toFloats}, e.g. from a checkpoint. */
    public static ParamMask ofFloats(float[] keep) {
        long[] b = new long[(keep.length + 63) >>> 6];
        for (int i = 0; i < keep.length; i++) {
            if (keep[i] != 0f) b[i >>> 6] |= 1L << (i & 63);
        }
        return new ParamMask(keep.length, b);
    }

    /**
     * Masks for the 2-D parameters (weight matrices, embedding, head) of {@code model} whose fraction of exact
     * zeros is at least {@code minSparsity} (&gt; 0): each holds its current zeros at zero. Norms and biases are
     * never masked. Keys in parameter order.
     */
    public static java.util.Map<String, ParamMask> ofZeros(TrainModel model, double minSparsity) {
        if (!(minSparsity > 0 && minSparsity <= 1)) throw new IllegalArgumentException("minimum sparsity " + minSparsity + " not in (0, 1]");
        java.util.Map<String, ParamMask> out = new java.util.LinkedHashMap<>();
        for (TrainModel.Param p : model.params()) {
            if (p.shape().length != 2 || p.size() == 0) continue;
            ParamMask m = ofNonZeros(p.data());
            if (m.sparsity() >= minSparsity) out.put(p.name(), m);
        }
        return out;
    }

    /** Number of elements. */
    public int size() {
        return size;
    }

    public boolean isFree(int i) {
        if (i < 0 || i >= size) throw new IndexOutOfBoundsException(i);
        return (bits[i >>> 6] >>> (i & 63) & 1L) != 0;
    }

    /** Marks element i as held at zero. */
    public void mask(int i) {
        if (i < 0 || i >= size) throw new IndexOutOfBoundsException(i);
        bits[i >>> 6] &= ~(1L << (i & 63));
    }

    /** Number of free (trainable) elements. */
    public long freeCount() {
        long n = 0;
        for (long w : bits) n += Long.bitCount(w);
        return n;
    }

    /** Number of elements held at zero. */
    public long maskedCount() {
        return size - freeCount();
    }

    /** Fraction of elements held at zero. */
    public double sparsity() {
        return size == 0 ? 0 : (double) maskedCount() / size;
    }

    /** Sets every masked element of {@code a} (weights or gradient, length {@link #size()}) to +0.0. */
    public void apply(float[] a) {
        if (a.length != size) throw new IllegalArgumentException("mask of " + size + " elements applied to an array of " + a.length);
        for (int w = 0; w < bits.length; w++) {
            long free = bits[w];
            int base = w << 6;
            int end = Math.min(64, size - base);
            long masked = ~free & (end == 64 ? -1L : (1L << end) - 1);
            while (masked != 0) {
                int b = Long.numberOfTrailingZeros(masked);
                a[base + b] = 0f;
                masked &= masked - 1;
            }
        }
    }

    /** 1 where free, 0 where masked (for checkpoints). */
    public float[] toFloats() {
        float[] f = new float[size];
        for (int i = 0; i < size; i++) f[i] = (bits[i >>> 6] >>> (i & 63) & 1L) != 0 ? 1f : 0f;
        return f;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ParamMask m && m.size == size && Arrays.equals(m.bits, bits);
    }

    @Override
    public int hashCode() {
        return 31 * size + Arrays.hashCode(bits);
    }

    @Override
    public String toString() {
        return "ParamMask[" + maskedCount() + " of " + size + " held at zero]";
    }
}
