package dev.lathe.model;

import dev.lathe.LatheException;
import dev.lathe.tensor.ActivationQuantizedCodec;
import dev.lathe.tensor.ActivationQuantizer;
import dev.lathe.tensor.BlockCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.ExpandedQ8Dot;
import dev.lathe.tensor.FloatRowDot;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.PanelGemm;
import dev.lathe.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A linear layer over block-quantized weights (any type with a {@link BlockCodec}), read in place; nothing
 * is dequantized at load. When the codec is an {@link ActivationQuantizedCodec} the input rows are first
 * quantized to its activation type (Q8_0 / Q8_1 / Q8_K) and the dots run on the quantized rows, exactly as
 * llama.cpp's CPU backend computes; otherwise the codec's float dot is used. The quantized activations live
 * in a reused native buffer (Vector API loads from heap segments are slow) and heap weights are copied to
 * native memory once. Decode (one input row) runs {@link ActivationQuantizedCodec#dotQuantized} per weight
 * row, in tiles of 4 rows split over threads; for Q4_0/Q8_0 ({@link ExpandedQ8Dot}) the Q8_0 activation row is
 * first expanded to floats with its block scales applied, for Q4_K/Q6_K ({@link FloatRowDot}) to its values d*q
 * and 32-value sums, and the weights' block or sub-block scales of these four types are decoded to floats once,
 * on the first decode, and kept (12-30 % of the tensor's size on top), so the inner loops only decode quants;
 * all equal to dotQuantized up to float rounding.
 * Prefill (several input rows) runs on {@link PanelGemm} for every type (Q4_0, Q8_0, Q4_1, Q5_0, Q5_1, IQ4_NL
 * with Q8_0/Q8_1 activations, Q2_K..Q6_K with Q8_K): the quantized activations are expanded once per call to
 * their values d*q (plus, for Q4_1/Q5_1, the Q8_1 blocks' stored sums as extra columns), packed column-major
 * in groups of one vector of rows; each panel of 16 weight rows is decoded once with
 * {@link ActivationQuantizedCodec#decodePrefillRow} (the dequantized weights; Q4_1/Q5_1 d*q plus the mins as
 * extra columns) and multiplied in tiles of 8 weight rows by one or two groups, one vector of outputs per
 * accumulator. The results equal dotQuantized up to float rounding (float sums of exact products instead of
 * integer block sums scaled in float).
 * Decode and prefill keep llama.cpp's arithmetic model: the weights meet the activations as quantized to the vec_dot type.
 */
public final class QuantLinear implements Linear {
    private static final int TILE = 4;
    private static final int PANEL = 16;
    private static final int XB = 32;
    /** Per-calling-thread integer 32-value sums and per-256 scales of a Q8_K decode row (the k-quant mins). */
    private static final ThreadLocal<Object[]> XI = ThreadLocal.withInitial(() -> new Object[] {new int[0], new float[0]});
    /** Per-calling-thread expanded activations: the packed prefill groups, or the expanded decode row (and its per-block terms). */
    private static final ThreadLocal<float[][]> XF = ThreadLocal.withInitial(() -> new float[][] {new float[0], new float[0]});
    /** Per-worker decoded weight panel and output tile of the {@link PanelGemm} prefill. */
    private static final ThreadLocal<float[][]> WF = ThreadLocal.withInitial(() -> new float[][] {new float[0], new float[0]});
    /**
     * Per-calling-thread quantized activations, in native memory: Vector API loads from heap segments run
     * many times slower. Arena.ofAuto segments may be read by the pool's workers.
     */
    private static final ThreadLocal<MemorySegment[]> XQ = ThreadLocal.withInitial(() -> new MemorySegment[] {MemorySegment.NULL});

    private final Tensor weight;
    private final MemorySegment data;
    private final BlockCodec codec;
    private final ActivationQuantizedCodec aq;
    private final BlockCodec actCodec;
    private final long actRowBytes;
    private final int in;
    private final int out;
    private final long rowBytes;
    private final Parallel pool;
    private boolean useQuantizedActivations;

    public QuantLinear(Tensor weight) {
        this(weight, Parallel.common());
    }

    public QuantLinear(Tensor weight, Parallel pool) {
        this(weight, BlockCodecs.get(weight.type()), null, pool);
    }

    /**
     * With explicit codecs: {@code activationCodec} quantizes input rows for an {@link ActivationQuantizedCodec}
     * (null: take it from {@link BlockCodecs}, or use the float path if it is not registered).
     */
    public QuantLinear(Tensor weight, BlockCodec codec, BlockCodec activationCodec, Parallel pool) {
        if (weight.dims() != 2) throw new LatheException(weight.name() + ": a linear weight must be 2-D, got " + weight);
        if (weight.cols() > Integer.MAX_VALUE || weight.rows() > Integer.MAX_VALUE) throw new LatheException(weight.name() + ": absurd shape " + weight);
        if (codec.type() != weight.type()) throw new IllegalArgumentException(weight.name() + ": codec for " + codec.type() + " given for a " + weight.type() + " tensor");
        this.weight = weight;
        this.data = Linears.nativeCopy(weight.data());
        this.codec = codec;
        this.in = (int) weight.cols();
        this.out = (int) weight.rows();
        this.rowBytes = weight.rowBytes();
        this.pool = pool;
        ActivationQuantizedCodec a = codec instanceof ActivationQuantizedCodec q ? q : null;
        BlockCodec ac = null;
        if (a != null) {
            GgmlType at = a.activationType();
            if (activationCodec != null && activationCodec.type() == at) ac = activationCodec;
            else if (BlockCodecs.supports(at)) ac = BlockCodecs.get(at);
            if (ac == null || in % at.blockSize != 0) a = null;
        }
        this.aq = a;
        this.actCodec = a == null ? null : ac;
        this.actRowBytes = a == null ? 0 : a.activationType().bytesFor(in);
        this.useQuantizedActivations = a != null;
    }

    public Tensor weight() {
        return weight;
    }

    /** True when input rows are quantized to {@link #activationType()} before the dots (llama.cpp's path). */
    public boolean usesQuantizedActivations() {
        return useQuantizedActivations;
    }

    /** The activation type, or null when the float path is used. */
    public GgmlType activationType() {
        return useQuantizedActivations ? aq.activationType() : null;
    }

    /** Forces the float-activation path (dequantize-and-multiply semantics) or restores the default. */
    public QuantLinear quantizedActivations(boolean on) {
        this.useQuantizedActivations = on && aq != null;
        return this;
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
        return weight.type().name();
    }

    @Override
    public void forward(float[] x, float[] y, int n) {
        if (n <= 0) return;
        if (x.length < (long) n * in || y.length < (long) n * out) {
            throw new IllegalArgumentException(weight.name() + ": buffers too small for " + n + " rows");
        }
        int panels = (out + PANEL - 1) / PANEL;
        long work = (long) PANEL * in * n;
        int minChunk = (int) Math.max(1, Math.min(panels, 65536 / Math.max(1, work)));
        if (useQuantizedActivations) {
            long need = actRowBytes * n;
            if (need > Integer.MAX_VALUE - 64) throw new IllegalArgumentException(weight.name() + ": batch too large");
            MemorySegment[] holder = XQ.get();
            if (holder[0].byteSize() < need) holder[0] = Arena.ofAuto().allocate(Math.max(need, holder[0].byteSize() * 3 / 2), 64);
            MemorySegment xq = holder[0];
            BlockCodec ac = actCodec;
            if (ac instanceof ActivationQuantizer aqz) {
                // llama.cpp's CPU activation quantization (differs from quantize() in rare rounding ties)
                pool.forRange(n, 1, (w, from, to) -> {
                    for (int i = from; i < to; i++) aqz.quantizeActivations(x, i * in, in, xq, i * actRowBytes);
                });
            } else {
                pool.forRange(n, 1, (w, from, to) -> {
                    for (int i = from; i < to; i++) ac.quantize(x, i * in, in, null, xq, i * actRowBytes);
                });
            }
            ActivationQuantizedCodec q = aq;
            if (n == 1 && q instanceof ExpandedQ8Dot e) {
                decodeExpanded(e, xq, y);
                return;
            }
            if (n == 1 && q instanceof FloatRowDot f) {
                decodeFloatRow(f, xq, y);
                return;
            }
            if (n == 1) {
                int tiles = (out + TILE - 1) / TILE, minTiles = decodeGrain(tiles);
                pool.forRange(tiles, minTiles, (worker, from, to) -> {
                    for (int r = from * TILE, e = Math.min(out, to * TILE); r < e; r++) y[r] = q.dotQuantized(data, r * rowBytes, xq, 0, in);
                });
                return;
            }
            forwardPanels(q, xq, y, n, panels, minChunk);
        } else {
            BlockCodec c = codec;
            pool.forRange(panels, minChunk, (worker, from, to) -> {
                for (int p = from; p < to; p++) {
                    int r0 = p * PANEL, r1 = Math.min(out, r0 + PANEL);
                    for (int xb = 0; xb < n; xb += XB) {
                        int xe = Math.min(n, xb + XB);
                        for (int t0 = r0; t0 < r1; t0 += TILE) {
                            int t1 = Math.min(r1, t0 + TILE);
                            for (int i = xb; i < xe; i++) {
                                int xo = i * in, yo = i * out;
                                for (int r = t0; r < t1; r++) y[yo + r] = c.dot(data, r * rowBytes, x, xo, in);
                            }
                        }
                    }
                }
            });
        }
    }

    /**
     * Prefill for every other activation-quantized type ({@link PanelGemm}): the quantized activations are
     * expanded once to floats, packed in groups of {@link PanelGemm#lanes()} rows; each panel of 16 weight
     * rows is decoded once to floats ({@link ActivationQuantizedCodec#decodePrefillRow}) and multiplied with
     * every group in register tiles of 8 weight rows.
     */
    private void forwardPanels(ActivationQuantizedCodec q, MemorySegment xq, float[] y, int n, int panels, int minChunk) {
        int cols = PanelGemm.columns(q, in), lanes = PanelGemm.lanes();
        int groups = (n + lanes - 1) / lanes;
        long groupSize = (long) cols * lanes;
        if (groupSize * groups > Integer.MAX_VALUE - 16) throw new IllegalArgumentException(weight.name() + ": batch too large");
        float[][] holder = XF.get();
        if (holder[0].length < groupSize * groups) holder[0] = new float[(int) (groupSize * groups)];
        float[] xp = holder[0];
        long arb = actRowBytes;
        pool.forRange(groups, 1, (w, from, to) -> {
            for (int g = from; g < to; g++) {
                int base = (int) (g * groupSize);
                for (int lane = 0; lane < lanes; lane++) {
                    int i = g * lanes + lane;
                    if (i < n) PanelGemm.expand(q, xq, i * arb, in, xp, base, lanes, lane);
                    else PanelGemm.clearLane(xp, base, cols, lanes, lane);
                }
            }
        });
        pool.forRange(panels, minChunk, (worker, from, to) -> {
            float[][] wh = WF.get();
            if (wh[0].length < PANEL * cols) wh[0] = new float[PANEL * cols];
            if (wh[1].length < 2 * PanelGemm.TILE * lanes) wh[1] = new float[2 * PanelGemm.TILE * lanes];
            float[] wf = wh[0], tile = wh[1];
            for (int p = from; p < to; p++) {
                int r0 = p * PANEL, nr = Math.min(out, r0 + PANEL) - r0;
                for (int r = 0; r < nr; r++) q.decodePrefillRow(data, (r0 + r) * rowBytes, in, wf, r * cols);
                if (nr < PANEL) java.util.Arrays.fill(wf, nr * cols, PANEL * cols, 0f);
                PanelGemm.multiplyPanel(wf, 0, nr, cols, xp, n, y, r0, out, tile);
            }
        });
    }

    /** Decode chunk size in tiles of {@value #TILE} rows: about 16 Ki weights per hand-off. */
    private int decodeGrain(int tiles) {
        return (int) Math.max(1, Math.min(tiles, 16384 / Math.max(1L, (long) TILE * in)));
    }

    /**
     * Decode for Q4_K/Q6_K ({@link FloatRowDot}): the quantized row expanded once to floats and integer 32-value sums;
     * the weights' sub-block scales decoded to floats once per layer on the first decode ({@link
     * FloatRowDot#rowScales}: 22 % of a Q4_K tensor's size, 30 % of a Q6_K one's, on top).
     */
    private void decodeFloatRow(FloatRowDot f, MemorySegment xq, float[] y) {
        int nb = in / 32, perRow = f.rowScaleCount(in);
        float[] sc = scales(perRow, (r, dst, off) -> f.rowScales(data, r * rowBytes, in, dst, off));
        float[][] holder = XF.get();
        if (holder[0].length < in) holder[0] = new float[in];
        float[] xf = holder[0];
        PanelGemm.expand(f, xq, 0, in, xf, 0, 1, 0);
        Object[] ih = XI.get();
        if (((int[]) ih[0]).length < nb) ih[0] = new int[nb];
        if (((float[]) ih[1]).length < nb) ih[1] = new float[nb];
        int[] bsum = (int[]) ih[0];
        float[] xd = (float[]) ih[1];
        FloatRowDot.q8kSums(xq, 0, in, bsum, xd);
        int tiles = (out + TILE - 1) / TILE, minTiles = decodeGrain(tiles);
        pool.forRange(tiles, minTiles, (worker, from, to) -> {
            for (int r = from * TILE, end = Math.min(out, to * TILE); r < end; r++) y[r] = f.dotFloatRow(data, r * rowBytes, sc, r * perRow, xf, bsum, xd, in);
        });
    }

    /**
     * Decode for Q4_0/Q8_0 weights ({@link ExpandedQ8Dot}): the weights' fp16 block scales are converted to
     * floats once per layer (on the first decode; 4 bytes per 32 weights, so 22 % of a Q4_0 tensor's and 12 %
     * of a Q8_0 tensor's size on top), the one Q8_0 activation row once per call with its scales applied, so
     * the inner loops only decode quants. Equal to {@link ActivationQuantizedCodec#dotQuantized} up to float
     * rounding.
     */
    private void decodeExpanded(ExpandedQ8Dot e, MemorySegment xq, float[] y) {
        int nb = in / 32, perRow = nb;
        float[] sc = scales(perRow, (r, dst, off) -> e.blockScales(data, r * rowBytes, in, dst, off));
        float[][] holder = XF.get();
        if (holder[0].length < e.expandedLength(in)) holder[0] = new float[e.expandedLength(in)];
        if (holder[1].length < nb) holder[1] = new float[nb];
        float[] xa = holder[0], xs = holder[1];
        e.expandActivations(xq, 0, in, xa, xs);
        int tiles = (out + TILE - 1) / TILE, minTiles = decodeGrain(tiles);
        pool.forRange(tiles, minTiles, (worker, from, to) -> {
            for (int r = from * TILE, end = Math.min(out, to * TILE); r < end; r++) {
                y[r] = e.dotExpanded(data, r * rowBytes, sc, r * perRow, xa, xs, in);
            }
        });
    }

    private volatile float[] scales;

    /** Fills a row's decoded scales. */
    private interface RowScales {
        void fill(long row, float[] dst, int dstOff);
    }

    /** The weights' decoded scales, {@code perRow} floats per row (made on first use, then kept). */
    private float[] scales(int perRow, RowScales rs) {
        float[] sc = scales;
        if (sc != null) return sc;
        synchronized (this) {
            if (scales == null) {
                long count = (long) out * perRow;
                if (count > Integer.MAX_VALUE - 16) throw new LatheException(weight.name() + ": too many blocks for the decode scales: " + count);
                float[] a = new float[(int) count];
                pool.forRange(out, 256, (w, from, to) -> {
                    for (int r = from; r < to; r++) rs.fill(r, a, r * perRow);
                });
                scales = a;
            }
            return scales;
        }
    }
}
