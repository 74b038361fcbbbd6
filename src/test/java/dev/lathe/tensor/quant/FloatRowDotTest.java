package dev.lathe.tensor.quant;

import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.FloatRowDot;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.PanelGemm;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The decode kernel on the expanded activation row gives dotQuantized's value up to float rounding. */
class FloatRowDotTest {
    @ParameterizedTest
    @ValueSource(strings = {"Q4_K", "Q6_K"})
    void floatRowDotMatchesQuantizedDot(String typeName) {
        GgmlType t = GgmlType.valueOf(typeName);
        FloatRowDot c = (FloatRowDot) BlockCodecs.get(t);
        Random rnd = new Random(11);
        for (int n : new int[] {256, 512, 2048}) {
            int rows = 9;
            float[] w = new float[rows * n];
            for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * (i % 53 == 0 ? 8 : 1) + (i / n == 3 ? 0.7 : 0));
            float[] x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float) rnd.nextGaussian() * (i % 97 == 0 ? 20 : 1);
            try (Arena arena = Arena.ofConfined()) {
                long rb = t.bytesFor(n);
                MemorySegment ws = arena.allocate(rb * rows + 5, 64).asSlice(5); // unaligned rows
                for (int r = 0; r < rows; r++) c.quantize(w, r * n, n, null, ws, r * rb);
                MemorySegment xq = arena.allocate(c.activationBytes(n), 64);
                c.quantizeActivations(x, 0, n, xq, 0);
                float[] xf = new float[n + 7], xs = new float[n / 32 + 3];
                PanelGemm.expand(c, xq, 0, n, xf, 7, 1, 0);
                FloatRowDot.blockSums(xf, 7, n, xs, 3);
                float[] deq = new float[n];
                // the row-scale route: the sub-block scales decoded once, the activations at offset 0
                int per = c.rowScaleCount(n);
                assertTrue(per > 0);
                float[] sc = new float[rows * per + 2];
                for (int r = 0; r < rows; r++) c.rowScales(ws, r * rb, n, sc, 2 + r * per);
                float[] xf0 = java.util.Arrays.copyOfRange(xf, 7, 7 + n);
                int[] bsum = new int[n / 32];
                float[] xd = new float[n / 256];
                FloatRowDot.q8kSums(xq, 0, n, bsum, xd);
                for (int r = 0; r < rows; r++) {
                    float want = c.dotQuantized(ws, r * rb, xq, 0, n);
                    float got = c.dotFloatRow(ws, r * rb, xf, 7, xs, 3, n);
                    float scaled = c.dotFloatRow(ws, r * rb, sc, 2 + r * per, xf0, bsum, xd, n);
                    c.dequantize(ws, r * rb, deq, 0, n);
                    double mag = 0;
                    for (int i = 0; i < n; i++) mag += Math.abs(deq[i] * xf[7 + i]);
                    assertTrue(mag > 0);
                    assertEquals(want, got, 1e-5 * mag, t + " n=" + n + " row " + r);
                    assertEquals(want, scaled, 1e-5 * mag, t + " row scales, n=" + n + " row " + r);
                }
                assertThrows(IndexOutOfBoundsException.class, () -> c.dotFloatRow(ws, 0, sc, rows * per - per + 3, xf0, bsum, xd, n));
                assertThrows(IndexOutOfBoundsException.class, () -> c.dotFloatRow(ws, 0, xf, 8, xs, 3, n));
            }
        }
    }
}
