package dev.lathe.tensor.quant;

import dev.lathe.model.Parallel;
import dev.lathe.model.QuantLinear;
import dev.lathe.tensor.ActivationQuantizedCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.PanelGemm;
import dev.lathe.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The prefill GEMM ({@link PanelGemm}, and {@link QuantLinear} with several input rows) gives, for every
 * activation-quantized weight type, what {@code dotQuantized} gives per (weight row, activation row) pair, to
 * within float rounding of the sum of absolute products.
 */
class PanelGemmTest {
    static final int[] INPUT_ROWS = {1, 3, 17, 33, 70};
    /** Weight rows: not a multiple of the 16-row panel nor of the 8-row tile. */
    static final int OUT = 37;
    /** Relative tolerance against the sum of |products| (float sums over a few hundred terms). */
    static final double REL = 1e-5;

    static Parallel pool;

    @BeforeAll
    static void start() {
        pool = new Parallel(3);
    }

    @AfterAll
    static void stop() {
        pool.close();
    }

    /** Weights with varied blocks: gaussian, some large outliers, an all-positive stretch, a zero block. */
    static float[] weights(int out, int n, long seed) {
        Random r = new Random(seed);
        float[] w = new float[out * n];
        for (int i = 0; i < w.length; i++) {
            double g = r.nextGaussian();
            int k = i % n;
            w[i] = (float) (k < 32 && i / n % 5 == 1 ? 0 : k % 64 >= 48 ? 0.05 + Math.abs(0.02 * g) : 0.02 * g * (r.nextInt(50) == 0 ? 8 : 1));
        }
        return w;
    }

    static float[] activations(int rows, int n, long seed) {
        Random r = new Random(seed);
        float[] x = new float[rows * n];
        for (int i = 0; i < x.length; i++) x[i] = (float) (r.nextGaussian() * (i % 97 == 0 ? 20 : 1) + (i / n % 3 == 2 ? 0.5 : 0));
        return x;
    }

    /** A quantized weight matrix plus its activations, the reference dots and their magnitudes. */
    record Case(ActivationQuantizedCodec c, int n, int rows, MemorySegment w, long rowBytes, float[] x, MemorySegment xq,
                long actBytes, float[] want, double[] mag) {}

    static Case build(Arena arena, GgmlType t, int n, int rows) {
        ActivationQuantizedCodec c = (ActivationQuantizedCodec) BlockCodecs.get(t);
        long rb = t.bytesFor(n), ab = c.activationBytes(n);
        MemorySegment w = arena.allocate(rb * OUT, 64);
        float[] wf = weights(OUT, n, 31L * n + t.ordinal());
        for (int r = 0; r < OUT; r++) c.quantize(wf, r * n, n, null, w, r * rb);
        float[] x = activations(rows, n, 17L * rows + n);
        MemorySegment xq = arena.allocate(ab * rows, 64);
        for (int i = 0; i < rows; i++) c.quantizeActivations(x, i * n, n, xq, i * ab);
        float[] want = new float[rows * OUT];
        double[] mag = new double[rows * OUT];
        float[] wd = new float[n], xd = new float[n];
        dev.lathe.tensor.BlockCodec ac = BlockCodecs.get(c.activationType());
        for (int r = 0; r < OUT; r++) {
            c.dequantize(w, r * rb, wd, 0, n);
            for (int i = 0; i < rows; i++) {
                want[i * OUT + r] = c.dotQuantized(w, r * rb, xq, i * ab, n);
                ac.dequantize(xq, i * ab, xd, 0, n);
                double m = 0;
                for (int k = 0; k < n; k++) m += Math.abs((double) wd[k] * xd[k]);
                mag[i * OUT + r] = m;
            }
        }
        return new Case(c, n, rows, w, rb, x, xq, ab, want, mag);
    }

    static void check(Case k, float[] got, int yOff, int yStride, String what) {
        for (int i = 0; i < k.rows; i++) {
            for (int r = 0; r < OUT; r++) {
                float want = k.want[i * OUT + r], g = got[yOff + i * yStride + r];
                double tol = REL * k.mag[i * OUT + r] + 1e-30;
                if (!(Math.abs(g - want) <= tol)) {
                    fail(what + " " + k.c.type() + " n=" + k.n + " rows=" + k.rows + ": weight row " + r + ", input row " + i
                            + ": got " + g + ", dotQuantized " + want + " (tolerance " + tol + ")");
                }
            }
        }
    }

    /** Runs the packed-panel product directly: expand, decode panels of 16 rows, the vector or scalar kernel. */
    static float[] panelProduct(Case k, boolean scalar) {
        ActivationQuantizedCodec c = k.c;
        int n = k.n, cols = PanelGemm.columns(c, n), lanes = PanelGemm.lanes(), groups = (k.rows + lanes - 1) / lanes;
        float[] xp = new float[groups * cols * lanes + 5];
        java.util.Arrays.fill(xp, Float.NaN); // every used entry must be written
        for (int i = 0; i < groups * lanes; i++) {
            int g = i / lanes, lane = i % lanes, base = 5 + g * cols * lanes;
            if (i < k.rows) PanelGemm.expand(c, k.xq, i * k.actBytes, n, xp, base, lanes, lane);
            else PanelGemm.clearLane(xp, base, cols, lanes, lane);
        }
        int stride = OUT + 3;
        float[] y = new float[k.rows * stride + 2];
        float[] wf = new float[16 * cols], tile = new float[2 * PanelGemm.TILE * lanes];
        for (int r0 = 0; r0 < OUT; r0 += 16) {
            int nr = Math.min(OUT, r0 + 16) - r0;
            java.util.Arrays.fill(wf, 0f);
            for (int r = 0; r < nr; r++) c.decodePrefillRow(k.w, (r0 + r) * k.rowBytes, n, wf, r * cols);
            for (int g = 0; g < groups; g++) {
                int xRows = Math.min(lanes, k.rows - g * lanes), xo = 5 + g * cols * lanes, yo = 2 + g * lanes * stride + r0;
                boolean pair = !scalar && g + 1 < groups; // the two-group tile, as QuantLinear runs it
                for (int t = 0; t < nr; t += PanelGemm.TILE) {
                    int wRows = Math.min(PanelGemm.TILE, nr - t);
                    if (scalar) PanelGemm.kernelScalar(wf, t * cols, cols, xp, xo, lanes, wRows, xRows, y, yo + t, stride);
                    else if (pair) {
                        PanelGemm.kernel2(wf, t * cols, cols, xp, xo, xo + cols * lanes, wRows, xRows, Math.min(lanes, k.rows - (g + 1) * lanes),
                                y, yo + t, yo + lanes * stride + t, stride, tile);
                    } else PanelGemm.kernel(wf, t * cols, cols, xp, xo, wRows, xRows, y, yo + t, stride, tile);
                }
                if (pair) g++;
            }
        }
        return y;
    }

    static List<Integer> lengths(GgmlType t) {
        List<Integer> ns = new ArrayList<>();
        for (int n : new int[]{256, 512, 704}) if (n % t.blockSize == 0) ns.add(n);
        return ns;
    }

    @ParameterizedTest
    @ValueSource(strings = {"Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_0", "Q8_0"})
    void panelKernelsMatchDotQuantized(String typeName) {
        GgmlType t = GgmlType.valueOf(typeName);
        try (Arena arena = Arena.ofConfined()) {
            for (int n : lengths(t)) {
                for (int rows : INPUT_ROWS) {
                    Case k = build(arena, t, n, rows);
                    check(k, panelProduct(k, false), 2, OUT + 3, "vector kernel (" + PanelGemm.lanes() + " lanes)");
                    check(k, panelProduct(k, true), 2, OUT + 3, "scalar kernel");
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_0", "Q8_0"})
    void quantLinearPrefillMatchesDotQuantized(String typeName) {
        GgmlType t = GgmlType.valueOf(typeName);
        try (Arena arena = Arena.ofShared() /* read by the pool */) {
            for (int n : lengths(t)) {
                for (int rows : INPUT_ROWS) {
                    Case k = build(arena, t, n, rows);
                    Tensor wt = new Tensor("w", t, new long[]{OUT, n}, k.w);
                    QuantLinear lin = new QuantLinear(wt, pool);
                    assertTrue(lin.usesQuantizedActivations());
                    float[] y = new float[rows * OUT];
                    lin.forward(k.x, y, rows);
                    check(k, y, 0, OUT, "QuantLinear");
                }
            }
        }
    }

    /**
     * Q4_1/Q5_1 add min times the activations' stored fp16 sum, as ggml does; the exact sum d * sum(q) in its
     * place (dequantize-and-multiply) differs by more than the tolerance, so the check above can tell.
     */
    @Test
    void storedActivationSumsMatter() {
        for (GgmlType t : new GgmlType[]{GgmlType.Q4_1, GgmlType.Q5_1}) {
            try (Arena arena = Arena.ofConfined()) {
                Case k = build(arena, t, 512, 17);
                float[] wd = new float[512], xd = new float[512];
                int off = 0;
                for (int i = 0; i < k.rows && off == 0; i++) {
                    BlockCodecs.get(GgmlType.Q8_1).dequantize(k.xq, i * k.actBytes, xd, 0, 512);
                    for (int r = 0; r < OUT; r++) {
                        k.c.dequantize(k.w, r * k.rowBytes, wd, 0, 512);
                        double s = 0;
                        for (int j = 0; j < 512; j++) s += (double) wd[j] * xd[j];
                        if (Math.abs(s - k.want[i * OUT + r]) > REL * k.mag[i * OUT + r]) off++;
                    }
                }
                assertTrue(off > 0, t + ": the exact-sum dot should differ from dotQuantized beyond the tolerance");
            }
        }
    }

    /**
     * The vector decoders give the codec's own dequantized floats (for Q4_1/Q5_1: without the min, which
     * sits in the extra column and adds back to the same float), over several rows and offsets.
     */
    @ParameterizedTest
    @ValueSource(strings = {"Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_0", "Q8_0"})
    void prefillDecodeEqualsDequantize(String typeName) {
        GgmlType t = GgmlType.valueOf(typeName);
        ActivationQuantizedCodec c = (ActivationQuantizedCodec) BlockCodecs.get(t);
        for (int n : lengths(t)) {
            int rows = 9;
            long rb = t.bytesFor(n);
            MemorySegment w = MemorySegment.ofArray(new byte[(int) (rb * rows + 1)]).asSlice(1); // unaligned rows
            float[] wf = weights(rows, n, 5L * n + t.ordinal());
            for (int r = 0; r < rows; r++) c.quantize(wf, r * n, n, null, w, r * rb);
            int cols = PanelGemm.columns(c, n);
            float[] want = new float[n], got = new float[cols + 3];
            for (int r = 0; r < rows; r++) {
                c.dequantize(w, r * rb, want, 0, n);
                java.util.Arrays.fill(got, Float.NaN);
                c.decodePrefillRow(w, r * rb, n, got, 3);
                for (int k = 0; k < n; k++) {
                    float g = c.prefillUsesActivationSums() ? got[3 + k] + got[3 + n + k / 32] : got[3 + k];
                    if (g != want[k]) fail(t + " n=" + n + " row " + r + " value " + k + ": decoded " + g + ", dequantized " + want[k]);
                }
            }
        }
    }

    @Test
    void columnsAddOnePerBlockOnlyForStoredSums() {
        assertEquals(512 + 16, PanelGemm.columns((ActivationQuantizedCodec) BlockCodecs.get(GgmlType.Q4_1), 512));
        assertEquals(512 + 16, PanelGemm.columns((ActivationQuantizedCodec) BlockCodecs.get(GgmlType.Q5_1), 512));
        assertEquals(512, PanelGemm.columns((ActivationQuantizedCodec) BlockCodecs.get(GgmlType.Q4_K), 512));
        assertEquals(512, PanelGemm.columns((ActivationQuantizedCodec) BlockCodecs.get(GgmlType.IQ4_NL), 512));
    }
}
