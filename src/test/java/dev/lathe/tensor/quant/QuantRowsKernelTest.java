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

/** The expanded-activation decode kernel of Q4_0/Q8_0 gives what {@code dotQuantized} gives, row by row. */
class QuantRowsKernelTest {
    private static final boolean AVX512 = FloatVector.SPECIES_PREFERRED.length() == 16;

    @ParameterizedTest
    @ValueSource(strings = {"Q4_0", "Q8_0"})
    void expandedDotMatchesQuantizedDot(String typeName) {
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
            ExpandedQ8Dot e = (ExpandedQ8Dot) c;
            {
                int nb = n / 32;
                float[] xf = new float[n * rows], xd = new float[nb * rows];
                for (int i = 0; i < rows; i++) ExpandedQ8Dot.expand(xs, i * ab, n, xf, i * n, xd, i * nb);
                for (int i = 0; i < rows; i++) {
                    float single = e.dotExpanded(ws, 3, xf, i * n, xd, i * nb, n);
                    if (AVX512) close(want[i], single, t + " expanded vs quantized, row " + i);
                    else assertEquals(want[i], single, 1e-5f * Math.max(1, Math.abs(want[i])), t + " expanded vs quantized, row " + i);
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
