package dev.lathe.tensor.quant;

import dev.lathe.tensor.ActivationQuantizedCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.ExpandedQ8Dot;
import dev.lathe.tensor.GgmlType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The expanded-operand decode kernel of Q4_0/Q8_0 gives what {@code dotQuantized} gives (to float rounding), row by row. */
class QuantRowsKernelTest {
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
            int nb = n / 32;
            float[] sc = new float[nb + 5];
            e.blockScales(ws, 3, n, sc, 5);
            for (int b = 0; b < nb; b++) assertEquals(Float.float16ToFloat(ws.get(ExpandedQ8Dot.I16, 3 + (rb / nb) * b)), sc[5 + b], t + " block scale " + b);
            float[] xa = new float[e.expandedLength(n)], xsum = new float[nb];
            float[] deq = new float[n];
            c.dequantize(ws, 3, deq, 0, n);
            for (int i = 0; i < rows; i++) {
                e.expandActivations(xs, i * ab, n, xa, xsum);
                float got = e.dotExpanded(ws, 3, sc, 5, xa, xsum, n);
                // the same products as dotQuantized, summed in float: within float rounding of the sum of |terms|
                float[] xd = new float[n];
                dev.lathe.tensor.BlockCodecs.get(c.activationType()).dequantize(xs, i * ab, xd, 0, n);
                double mag = 0;
                for (int j = 0; j < n; j++) mag += Math.abs((double) deq[j] * xd[j]);
                assertEquals(want[i], got, 2e-6 * mag, t + " expanded vs quantized, row " + i);
            }
            assertThrows(IndexOutOfBoundsException.class, () -> e.dotExpanded(ws, 3, sc, 6, xa, xsum, n));
            assertThrows(IndexOutOfBoundsException.class, () -> e.dotExpanded(ws, 3, sc, 0, new float[n - 32], xsum, n));
        }
    }

    /** Every nibble and byte value, with activations at the int8 extremes: the offset form of Q4_0 is exact there too. */
    @ParameterizedTest
    @ValueSource(strings = {"Q4_0", "Q8_0"})
    void extremeQuantsAgree(String typeName) {
        GgmlType t = GgmlType.valueOf(typeName);
        ActivationQuantizedCodec c = (ActivationQuantizedCodec) BlockCodecs.get(t);
        ExpandedQ8Dot e = (ExpandedQ8Dot) c;
        int n = 256, nb = n / 32;
        long rb = t.bytesFor(n);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ws = arena.allocate(rb, 64);
            int bs = (int) (rb / nb);
            for (int b = 0; b < nb; b++) {
                ws.set(ExpandedQ8Dot.I16, (long) bs * b, Float.floatToFloat16(0.5f + b));
                for (int j = 2; j < bs; j++) ws.set(java.lang.foreign.ValueLayout.JAVA_BYTE, (long) bs * b + j, (byte) (b * 37 + j * 17));
            }
            float[] x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (i % 3 == 0 ? 1 : -1) * (i % 5 == 0 ? 100f : 1f);
            MemorySegment xs = arena.allocate(c.activationBytes(n), 64);
            c.quantizeActivations(x, 0, n, xs, 0);
            float want = c.dotQuantized(ws, 0, xs, 0, n);
            float[] sc = new float[nb], xa = new float[e.expandedLength(n)], xsum = new float[nb];
            e.blockScales(ws, 0, n, sc, 0);
            e.expandActivations(xs, 0, n, xa, xsum);
            assertEquals(want, e.dotExpanded(ws, 0, sc, 0, xa, xsum, n), 1e-5f * Math.abs(want) + 1e-3f, t.name());
        }
    }
}
