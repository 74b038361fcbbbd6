package dev.lathe.model;

import dev.lathe.tensor.ActivationQuantizedCodec;
import dev.lathe.tensor.BlockCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class LinearTest {
    static Parallel pool;

    @BeforeAll
    static void start() {
        pool = new Parallel(3);
    }

    @AfterAll
    static void stop() {
        pool.close();
    }

    static float[] random(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextDouble() * 2 - 1);
        return a;
    }

    static Tensor encode(String name, GgmlType t, int out, int in, float[] w) {
        MemorySegment seg = MemorySegment.ofArray(new byte[(int) t.bytesFor((long) out * in)]);
        BlockCodec c = t == GgmlType.Q8_0 ? new TestQ8_0() : BlockCodecs.get(t);
        long rb = t.bytesFor(in);
        for (int r = 0; r < out; r++) c.quantize(w, r * in, in, null, seg, r * rb);
        return new Tensor(name, t, new long[]{out, in}, seg);
    }

    /** y = x W^T in double from dequantized weights. */
    static double[] reference(float[] w, float[] x, int out, int in, int n) {
        double[] y = new double[n * out];
        for (int i = 0; i < n; i++) {
            for (int r = 0; r < out; r++) {
                double s = 0;
                for (int k = 0; k < in; k++) s += (double) w[r * in + k] * x[i * in + k];
                y[i * out + r] = s;
            }
        }
        return y;
    }

    static float[] dequantize(Tensor t, BlockCodec c) {
        int out = (int) t.rows(), in = (int) t.cols();
        float[] w = new float[out * in];
        for (int r = 0; r < out; r++) c.dequantize(t.data(), r * t.rowBytes(), w, r * in, in);
        return w;
    }

    @Test
    void denseKernelsMatchReferenceForAllTypesAndShapes() {
        int[][] shapes = {{7, 33}, {64, 256}, {13, 48}, {4, 16}, {130, 100}};
        for (GgmlType t : new GgmlType[]{GgmlType.F32, GgmlType.F16, GgmlType.BF16}) {
            for (int[] sh : shapes) {
                int out = sh[0], in = sh[1];
                float[] w0 = random(out * in, out * 31L + in);
                Tensor wt = encode("w", t, out, in, w0);
                float[] w = dequantize(wt, BlockCodecs.get(t));
                Linear lin = Linears.of(wt, pool);
                assertThat(lin).isInstanceOf(DenseLinear.class);
                assertThat(lin.typeName()).isEqualTo(t.name());
                assertThat(lin.storageBytes()).isEqualTo(wt.data().byteSize());
                for (int n : new int[]{1, 3, 4, 9, 37}) {
                    float[] x = random(n * in, n);
                    float[] y = new float[n * out];
                    lin.forward(x, y, n);
                    double[] ref = reference(w, x, out, in, n);
                    for (int i = 0; i < y.length; i++) assertThat(Math.abs(y[i] - ref[i])).isLessThan(1e-4 * Math.sqrt(in));
                    // single-row calls (the decode kernel) agree with the batched rows to float rounding
                    for (int i = 0; i < n; i++) {
                        float[] xi = java.util.Arrays.copyOfRange(x, i * in, (i + 1) * in);
                        float[] yi = new float[out];
                        lin.forward(xi, yi, 1);
                        for (int r = 0; r < out; r++) assertThat(Math.abs(yi[r] - y[i * out + r])).isLessThan(1e-5f * (float) Math.sqrt(in));
                    }
                    // a batched row does not depend on the rest of its batch
                    if (n >= 4) {
                        float[] y2 = new float[2 * out];
                        lin.forward(java.util.Arrays.copyOfRange(x, 2 * in, 4 * in), y2, 2);
                        for (int r = 0; r < 2 * out; r++) assertThat(y2[r]).isEqualTo(y[2 * out + r]);
                    }
                }
            }
        }
    }

    @Test
    void quantLinearUsesQuantizedActivationsWhenTheCodecOffersThem() {
        int out = 37, in = 96, n = 5;
        TestQ8_0 codec = new TestQ8_0();
        float[] w0 = random(out * in, 7);
        Tensor wt = encode("q", GgmlType.Q8_0, out, in, w0);
        float[] w = dequantize(wt, codec);
        float[] x = random(n * in, 8);
        // quantized-activation path: equals the reference on dequantized weights and dequantized Q8_0 activations
        QuantLinear ql = new QuantLinear(wt, codec, codec, pool);
        assertThat(ql.usesQuantizedActivations()).isTrue();
        assertThat(ql.activationType()).isEqualTo(GgmlType.Q8_0);
        float[] y = new float[n * out];
        ql.forward(x, y, n);
        Tensor xt = encode("x", GgmlType.Q8_0, n, in, x);
        double[] refQ = reference(w, dequantize(xt, codec), out, in, n);
        double[] refF = reference(w, x, out, in, n);
        double maxQ = 0, maxF = 0;
        for (int i = 0; i < y.length; i++) {
            maxQ = Math.max(maxQ, Math.abs(y[i] - refQ[i]));
            maxF = Math.max(maxF, Math.abs(y[i] - refF[i]));
        }
        assertThat(maxQ).isLessThan(1e-4);
        assertThat(maxF).isGreaterThan(maxQ); // activation rounding is visible
        // float path
        ql.quantizedActivations(false);
        assertThat(ql.usesQuantizedActivations()).isFalse();
        ql.forward(x, y, n);
        for (int i = 0; i < y.length; i++) assertThat(Math.abs(y[i] - refF[i])).isLessThan(1e-4);
        assertThatThrownBy(() -> ql.forward(new float[3], y, n)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void parallelRunsEveryIndexOnceAndPropagatesErrors() {
        int n = 10_000;
        int[] hits = new int[n];
        pool.forRange(n, 7, (w, from, to) -> {
            assertThat(w).isBetween(0, pool.threads() - 1);
            for (int i = from; i < to; i++) hits[i]++;
        });
        for (int h : hits) assertThat(h).isEqualTo(1);
        assertThatThrownBy(() -> pool.forRange(100, 1, (w, from, to) -> {
            if (from <= 50 && 50 < to) throw new IllegalStateException("boom");
        })).isInstanceOf(IllegalStateException.class).hasMessage("boom");
        // still usable afterwards, and nested calls run inline
        long[] sum = {0};
        pool.forRange(4, 1, (w, from, to) -> pool.forRange(3, 1, (w2, f2, t2) -> {
            synchronized (sum) { sum[0] += t2 - f2; }
        }));
        assertThat(sum[0]).isEqualTo(12);
    }

    /** Minimal Q8_0 (f16 scale + 32 int8) used only to exercise QuantLinear's two paths. */
    static final class TestQ8_0 implements ActivationQuantizedCodec {
        static final ValueLayout.OfShort I16 = Tensor.I16_LE;

        public GgmlType type() { return GgmlType.Q8_0; }

        public GgmlType activationType() { return GgmlType.Q8_0; }

        public void dequantize(MemorySegment src, long off, float[] dst, int dOff, int n) {
            for (int b = 0; b < n / 32; b++) {
                long bo = off + 34L * b;
                float d = Float.float16ToFloat(src.get(I16, bo));
                for (int j = 0; j < 32; j++) dst[dOff + b * 32 + j] = d * src.get(ValueLayout.JAVA_BYTE, bo + 2 + j);
            }
        }

        public void quantize(float[] src, int sOff, int n, float[] imp, MemorySegment dst, long off) {
            for (int b = 0; b < n / 32; b++) {
                float amax = 0;
                for (int j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(src[sOff + b * 32 + j]));
                float d = amax / 127, id = d != 0 ? 1 / d : 0;
                long bo = off + 34L * b;
                dst.set(I16, bo, Float.floatToFloat16(d));
                for (int j = 0; j < 32; j++) dst.set(ValueLayout.JAVA_BYTE, bo + 2 + j, (byte) Math.round(src[sOff + b * 32 + j] * id));
            }
        }

        public float dot(MemorySegment w, long off, float[] x, int xOff, int n) {
            float[] t = new float[n];
            dequantize(w, off, t, 0, n);
            float s = 0;
            for (int i = 0; i < n; i++) s += t[i] * x[xOff + i];
            return s;
        }

        public float dotQuantized(MemorySegment w, long wOff, MemorySegment xq, long xOff, int n) {
            float s = 0;
            for (int b = 0; b < n / 32; b++) {
                long wb = wOff + 34L * b, xb = xOff + 34L * b;
                int acc = 0;
                for (int j = 0; j < 32; j++) acc += w.get(ValueLayout.JAVA_BYTE, wb + 2 + j) * xq.get(ValueLayout.JAVA_BYTE, xb + 2 + j);
                s += Float.float16ToFloat(w.get(I16, wb)) * Float.float16ToFloat(xq.get(I16, xb)) * acc;
            }
            return s;
        }
    }
}
