package dev.lathe.model;

import dev.lathe.LatheException;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.PanelGemm;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.VectorKernels;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * A linear layer whose weights are stored as F32, F16 or BF16, read in place (e.g. from a mapped file).
 * Decode (one input row): output rows split over all threads in tiles of {@value #TR} rows, F16/BF16 rows
 * widened four at a time into a small buffer, four dot products per pass over the input. Prefill (several
 * input rows): the input rows are packed column-major in groups of {@link PanelGemm#lanes()} once per call;
 * output rows are split over the threads in panels of {@value #PANEL} rows, each widened once into a
 * per-thread float buffer (so each weight row is read from memory once per call whatever the batch size) and
 * multiplied with every group in {@link PanelGemm}'s register tiles (8 weight rows x one or two groups, one
 * vector of outputs per accumulator). The two paths sum in different orders, so decode and prefill agree to
 * float rounding; a row's result does not depend on the other rows of its batch.
 */
public final class DenseLinear implements Linear {
    static final int TR = 4;
    /** Weight rows widened at once (prefill: then multiplied with every packed group of input rows). */
    static final int PANEL = 16;
    private static final VectorSpecies<Float> F = VectorKernels.F;
    private static final int L = F.length();
    private static final VectorSpecies<Short> S = L == 16 ? ShortVector.SPECIES_256 : L == 8 ? ShortVector.SPECIES_128 : ShortVector.SPECIES_64;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private final Tensor weight;
    private final MemorySegment data;
    private final GgmlType type;
    private final int in;
    private final int out;
    private final long rowBytes;
    private final Parallel pool;
    /** Per-thread widened panel, shared by all layers (a model may run on several threads at once). */
    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[1][0]);
    /** Per-calling-thread input rows packed for {@link PanelGemm} (prefill). */
    private static final ThreadLocal<float[][]> PACKED = ThreadLocal.withInitial(() -> new float[1][0]);

    public DenseLinear(Tensor weight) {
        this(weight, Parallel.common());
    }

    public DenseLinear(Tensor weight, Parallel pool) {
        GgmlType t = weight.type();
        if (t != GgmlType.F32 && t != GgmlType.F16 && t != GgmlType.BF16) {
            throw new LatheException(weight.name() + ": DenseLinear needs F32, F16 or BF16, not " + t);
        }
        if (weight.dims() != 2) throw new LatheException(weight.name() + ": a linear weight must be 2-D, got " + weight);
        if (weight.cols() > Integer.MAX_VALUE / PANEL || weight.rows() > Integer.MAX_VALUE) {
            throw new LatheException(weight.name() + ": absurd shape " + weight);
        }
        this.weight = weight;
        this.data = Linears.nativeCopy(weight.data());
        this.type = t;
        this.in = (int) weight.cols();
        this.out = (int) weight.rows();
        this.rowBytes = weight.rowBytes();
        this.pool = pool;
    }

    public Tensor weight() {
        return weight;
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
    public long storageBytes() {
        return data.byteSize();
    }

    @Override
    public String typeName() {
        return type.name();
    }

    @Override
    public void forward(float[] x, float[] y, int n) {
        if (n <= 0) return;
        if (x.length < (long) n * in || y.length < (long) n * out) {
            throw new IllegalArgumentException(weight.name() + ": buffers too small for " + n + " rows");
        }
        if (n == 1) {
            matvec(x, y);
            return;
        }
        int panels = (out + PANEL - 1) / PANEL;
        // enough multiply-adds per chunk to pay for the hand-off
        long work = (long) PANEL * in * n;
        int minChunk = (int) Math.max(1, Math.min(panels, 65536 / Math.max(1, work)));
        int lanes = PanelGemm.lanes(), groups = (n + lanes - 1) / lanes;
        long packed = (long) groups * in * lanes;
        if (packed > Integer.MAX_VALUE - 16) throw new IllegalArgumentException(weight.name() + ": batch too large");
        float[][] xh = PACKED.get();
        if (xh[0].length < packed) xh[0] = new float[(int) packed];
        float[] xp = xh[0];
        pool.forRange(groups, 1, (t, from, to) -> {
            for (int g = from; g < to; g++) PanelGemm.packRows(x, in, n, g, xp);
        });
        pool.forRange(panels, minChunk, (worker, from, to) -> {
            float[][] holder = SCRATCH.get();
            if (holder[0].length < PANEL * in) holder[0] = new float[PANEL * in];
            if (holder.length < 2 || holder[1].length < 2 * PanelGemm.TILE * lanes) {
                float[][] h2 = {holder[0], new float[2 * PanelGemm.TILE * lanes]};
                SCRATCH.set(h2);
                holder = h2;
            }
            float[] w = holder[0], tile = holder[1];
            for (int p = from; p < to; p++) {
                int r0 = p * PANEL;
                int nr = Math.min(PANEL, out - r0);
                widen(r0, nr, w);
                if (nr < PANEL) java.util.Arrays.fill(w, nr * in, PANEL * in, 0f);
                PanelGemm.multiplyPanel(w, 0, nr, in, xp, n, y, r0, out, tile);
            }
        });
    }

    /**
     * Decode: one input row, four weight rows at a time; F32 rows are read straight from storage, F16/BF16
     * rows are widened four at a time into a small buffer.
     * Per row the sum runs in the same order as in the batched kernels, so the results are identical.
     */
    private void matvec(float[] x, float[] y) {
        int tiles = (out + TR - 1) / TR;
        int minChunk = (int) Math.max(1, Math.min(tiles, 65536 / Math.max(1L, (long) TR * in)));
        pool.forRange(tiles, minChunk, (worker, from, to) -> {
            float[] w = null;
            if (type != GgmlType.F32) {
                // F16/BF16: widening 4 rows into an L1-resident buffer beats converting in the FMA loop
                float[][] holder = SCRATCH.get();
                if (holder[0].length < TR * in) holder[0] = new float[Math.max(TR * in, PANEL * in)];
                w = holder[0];
            }
            for (int t = from; t < to; t++) {
                int r0 = t * TR;
                if (r0 + TR > out) {
                    for (int r = r0; r < out; r++) y[r] = rowDot(r, x);
                } else if (w == null) {
                    rows4F32(x, y, r0);
                } else {
                    widen(r0, TR, w);
                    kernel4x1(w, 0, x, 0, y, r0);
                }
            }
        });
    }

    private float scalar(long off) {
        return switch (type) {
            case F32 -> data.get(Tensor.F32_LE, off);
            case F16 -> Float.float16ToFloat(data.get(Tensor.I16_LE, off));
            default -> Float.intBitsToFloat((data.get(Tensor.I16_LE, off) & 0xffff) << 16);
        };
    }

    private float rowDot(int r, float[] x) {
        long base = r * rowBytes;
        int es = type == GgmlType.F32 ? 4 : 2;
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (; i + L <= in; i += L) {
            FloatVector w;
            if (type == GgmlType.F32) {
                w = FloatVector.fromMemorySegment(F, data, base + 4L * i, LE);
            } else {
                IntVector h = (IntVector) ShortVector.fromMemorySegment(S, data, base + 2L * i, LE).convertShape(VectorOperators.ZERO_EXTEND_S2I, I, 0);
                w = type == GgmlType.BF16 ? h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats() : VectorKernels.halfToFloat(h);
            }
            acc = w.fma(FloatVector.fromArray(F, x, i), acc);
        }
        float s = VecMath.sum(acc);
        for (; i < in; i++) s += scalar(base + (long) es * i) * x[i];
        return s;
    }

    private void rows4F32(float[] x, float[] y, int r0) {
        long b0 = r0 * rowBytes, b1 = b0 + rowBytes, b2 = b1 + rowBytes, b3 = b2 + rowBytes;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int i = 0;
        for (; i + L <= in; i += L) {
            FloatVector xv = FloatVector.fromArray(F, x, i);
            long o = 4L * i;
            a0 = FloatVector.fromMemorySegment(F, data, b0 + o, LE).fma(xv, a0);
            a1 = FloatVector.fromMemorySegment(F, data, b1 + o, LE).fma(xv, a1);
            a2 = FloatVector.fromMemorySegment(F, data, b2 + o, LE).fma(xv, a2);
            a3 = FloatVector.fromMemorySegment(F, data, b3 + o, LE).fma(xv, a3);
        }
        float s0 = VecMath.sum(a0), s1 = VecMath.sum(a1), s2 = VecMath.sum(a2), s3 = VecMath.sum(a3);
        for (; i < in; i++) {
            float xv = x[i];
            long o = 4L * i;
            s0 += data.get(Tensor.F32_LE, b0 + o) * xv;
            s1 += data.get(Tensor.F32_LE, b1 + o) * xv;
            s2 += data.get(Tensor.F32_LE, b2 + o) * xv;
            s3 += data.get(Tensor.F32_LE, b3 + o) * xv;
        }
        y[r0] = s0;
        y[r0 + 1] = s1;
        y[r0 + 2] = s2;
        y[r0 + 3] = s3;
    }

    /**
     * Widens {@code nr} stored rows starting at {@code r0} into {@code w}. Each type has its own small loop:
     * C2 compiles the scalar {@code Float.float16ToFloat} loop to vcvtph2ps (7-12 GB/s of F16 per core in a
     * 5632x2048 matvec, measured while shared), while one method holding the F16 and BF16 Vector API variants
     * was not fully inlined and ran at about 1 GB/s.
     */
    private void widen(int r0, int nr, float[] w) {
        long off = r0 * rowBytes;
        int n = nr * in;
        switch (type) {
            case F32 -> MemorySegment.copy(data, Tensor.F32_LE, off, w, 0, n);
            case F16 -> VectorKernels.widenF16(data, off, w, n);
            case BF16 -> VectorKernels.widenBf16(data, off, w, n);
            default -> throw new IllegalStateException();
        }
    }

    /** Dot product with the same summation order as the tiled kernels. */
    static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (; i + L <= n; i += L) acc = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), acc);
        float s = VecMath.sum(acc);
        for (; i < n; i++) s += a[aOff + i] * b[bOff + i];
        return s;
    }

    private void kernel4x1(float[] w, int wo, float[] x, int xi, float[] y, int r0) {
        int n = in;
        int xo = xi * n;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xo + i);
            a0 = FloatVector.fromArray(F, w, wo + i).fma(xv, a0);
            a1 = FloatVector.fromArray(F, w, wo + n + i).fma(xv, a1);
            a2 = FloatVector.fromArray(F, w, wo + 2 * n + i).fma(xv, a2);
            a3 = FloatVector.fromArray(F, w, wo + 3 * n + i).fma(xv, a3);
        }
        float s0 = VecMath.sum(a0), s1 = VecMath.sum(a1);
        float s2 = VecMath.sum(a2), s3 = VecMath.sum(a3);
        for (; i < n; i++) {
            float xv = x[xo + i];
            s0 += w[wo + i] * xv;
            s1 += w[wo + n + i] * xv;
            s2 += w[wo + 2 * n + i] * xv;
            s3 += w[wo + 3 * n + i] * xv;
        }
        int yo = xi * out + r0;
        y[yo] = s0;
        y[yo + 1] = s1;
        y[yo + 2] = s2;
        y[yo + 3] = s3;
    }

}
