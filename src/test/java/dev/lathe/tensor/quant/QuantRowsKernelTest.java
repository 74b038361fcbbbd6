package dev.lathe.tensor.quant;

import dev.lathe.tensor.ActivationQuantizedCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.ExpandedQ8Dot;
import dev.lathe.tensor.GgmlType;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The multi-row and expanded-activation kernels give what {@code dotQuantized} gives, row by row. */
class QuantRowsKernelTest {
    private static final boolean AVX512 = FloatVector.SPECIES_PREFERRED.length() == 16;

    @ParameterizedTest
    @ValueSource(strings = {"Q4_0", "Q8_0", "Q4_K", "Q6_K", "Q5_K", "Q3_K", "Q2_K", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL"})
    void rowsMatchSingleDots(String typeName) {
        GgmlType t = GgmlType.valueOf(typeName);
        ActivationQuantizedCodec c = (ActivationQuantizedCodec) BlockCodecs.get(t);
        int n = 512, rows = 7;
        Random rnd = new Random(7);
        float[] w = new float[n];
        for (int i = 0; i < n; i++) w[i] = (float) rnd.nextGaussian();
        float[] x = new float[n * rows];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian() * (i % 97 == 0 ? 20 : 1);
        try (Arena arena = Arena.ofConfined()) {
            long rb = t.bytesFor(n), ab = c.activationBytes(n) + 6; // odd stride: rows need not be packed
            MemorySegment ws = arena.allocate(rb + 3, 64);
            c.quantize(w, 0, n, null, ws, 3);
            MemorySegment xs = arena.allocate(ab * rows, 64);
            for (int i = 0; i < rows; i++) c.quantizeActivations(x, i * n, n, xs, i * ab);
            float[] want = new float[rows];
            for (int i = 0; i < rows; i++) want[i] = c.dotQuantized(ws, 3, xs, i * ab, n);
            float[] got = new float[2 * rows + 1];
            c.dotQuantizedRows(ws, 3, xs, 0, ab, rows, n, got, 1, 2);
            for (int i = 0; i < rows; i++) close(want[i], got[1 + 2 * i], t + " row " + i);
            if (c instanceof ExpandedQ8Dot e) {
                int nb = n / 32;
                float[] xf = new float[n * rows], xd = new float[nb * rows];
                for (int i = 0; i < rows; i++) ExpandedQ8Dot.expand(xs, i * ab, n, xf, i * n, xd, i * nb);
                float[] gotE = new float[rows];
                e.dotExpandedRows(ws, 3, xf, 0, xd, 0, rows, n, gotE, 0, 1);
                for (int i = 0; i < rows; i++) {
                    float single = e.dotExpanded(ws, 3, xf, i * n, xd, i * nb, n);
                    close(single, gotE[i], t + " expanded row " + i);
                    if (AVX512) close(want[i], single, t + " expanded vs quantized, row " + i);
                    else assertEquals(want[i], single, 1e-5f * Math.max(1, Math.abs(want[i])), t + " expanded vs quantized, row " + i);
                }
                // decoded panel of 3 weight rows (the same row, offset) against all activation rows
                float[] wf = new float[3 * n], wd = new float[3 * nb];
                for (int r = 0; r < 3; r++) e.decodeRow(ws, 3, n, wf, r * n, wd, r * nb);
                float[] y = new float[rows * 5];
                ExpandedQ8Dot.dotPanel(wf, wd, 3, xf, 0, xd, 0, rows, n, y, 1, 5);
                for (int i = 0; i < rows; i++) {
                    for (int r = 0; r < 3; r++) {
                        close(gotE[i], y[1 + i * 5 + r], t + " panel row " + r + ", input " + i);
                    }
                }
                assertThrows(IndexOutOfBoundsException.class, () -> e.dotExpanded(ws, 3, xf, n * rows - n + 32, xd, 0, n));
            }
        }
    }

    /**
     * The kernels compute the same sums in the same order, but a JIT tier may fuse or split a multiply-add
     * differently (interpreted Vector API code versus compiled intrinsics), so agreement is checked to a few
     * float ulps of the result rather than bit for bit.
     */
    static void close(float want, float got, String what) {
        assertEquals(want, got, 4 * Math.ulp(Math.max(1f, Math.abs(want))) * 64, what);
    }
}
