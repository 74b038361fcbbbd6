package dev.lathe.tensor.quant;

import dev.lathe.tensor.ActivationQuantizedCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Random;

/**
 * Single-thread throughput of the quantized dot kernels, by CPU time (not a test; run by hand):
 * {@code java --add-modules=jdk.incubator.vector -cp target/classes:target/test-classes
 * dev.lathe.tensor.quant.QuantKernelBench [types...]}. Prints weight GB per CPU second for
 * {@code dotQuantized} (one activation row), for Q4_0/Q8_0 {@code dotExpanded} and for Q4_K/Q6_K {@code dotFloatRow}
 * (without and with the kept row scales; Q6_K's scale-less form is the scalar reference)
 * (the row expanded to floats once, which decode uses for those types). Prefill runs on
 * {@link dev.lathe.tensor.PanelGemm}, not on these kernels.
 */
public final class QuantKernelBench {
    public static void main(String[] args) {
        String[] types = args.length > 0 ? args : new String[] {"Q4_0", "Q8_0", "Q4_K", "Q6_K", "Q5_K", "Q3_K", "Q2_K", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL"};
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        int n = 2048, rows = 512, xr = 1;
        Random rnd = new Random(42);
        float[] w = new float[n * rows];
        for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
        float[] x = new float[n * xr];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        Arena arena = Arena.ofAuto();
        for (String tn : types) {
            GgmlType t = GgmlType.valueOf(tn);
            ActivationQuantizedCodec c = (ActivationQuantizedCodec) BlockCodecs.get(t);
            long rb = t.bytesFor(n), ab = c.activationBytes(n);
            MemorySegment ws = arena.allocate(rb * rows, 64);
            for (int r = 0; r < rows; r++) c.quantize(w, r * n, n, null, ws, r * rb);
            MemorySegment xs = arena.allocate(ab * xr, 64);
            for (int i = 0; i < xr; i++) c.quantizeActivations(x, i * n, n, xs, i * ab);
            double best1 = 0;
            float sink = 0;
            for (int rep = 0; rep < 12; rep++) {
                long c0 = mx.getCurrentThreadCpuTime();
                int iters = 20;
                for (int it = 0; it < iters; it++) for (int r = 0; r < rows; r++) sink += c.dotQuantized(ws, r * rb, xs, 0, n);
                long c1 = mx.getCurrentThreadCpuTime();
                best1 = Math.max(best1, (double) rb * rows * iters / (c1 - c0));
            }
            String ex = "";
            if (c instanceof dev.lathe.tensor.ExpandedQ8Dot e) {
                float[] xf = new float[e.expandedLength(n)], xd = new float[n / 32], sc = new float[rows * (n / 32)];
                e.expandActivations(xs, 0, n, xf, xd);
                for (int r = 0; r < rows; r++) e.blockScales(ws, r * rb, n, sc, r * (n / 32));
                double bE = 0;
                for (int rep = 0; rep < 12; rep++) {
                    long c0 = mx.getCurrentThreadCpuTime();
                    int iters = 20;
                    for (int it = 0; it < iters; it++) for (int r = 0; r < rows; r++) sink += e.dotExpanded(ws, r * rb, sc, r * (n / 32), xf, xd, n);
                    long c1 = mx.getCurrentThreadCpuTime();
                    bE = Math.max(bE, (double) rb * rows * iters / (c1 - c0));
                }
                ex = String.format("   expanded dot %6.2f GB/s", bE);
            }
            if (c instanceof dev.lathe.tensor.FloatRowDot f) {
                float[] xf = new float[n], xsum = new float[n / 32];
                dev.lathe.tensor.PanelGemm.expand(f, xs, 0, n, xf, 0, 1, 0);
                dev.lathe.tensor.FloatRowDot.blockSums(xf, 0, n, xsum, 0);
                double bF = 0;
                for (int rep = 0; rep < 12; rep++) {
                    long c0 = mx.getCurrentThreadCpuTime();
                    int iters = 20;
                    for (int it = 0; it < iters; it++) for (int r = 0; r < rows; r++) sink += f.dotFloatRow(ws, r * rb, xf, 0, xsum, 0, n);
                    long c1 = mx.getCurrentThreadCpuTime();
                    bF = Math.max(bF, (double) rb * rows * iters / (c1 - c0));
                }
                int per = f.rowScaleCount(n);
                int[] bsum = new int[n / 32];
                float[] xd8 = new float[n / 32];
                if (f.activationType() == GgmlType.Q8_K) dev.lathe.tensor.FloatRowDot.q8kSums(xs, 0, n, bsum, xd8);
                float[] sc = new float[Math.max(1, rows * per)];
                for (int r = 0; r < rows && per > 0; r++) f.rowScales(ws, r * rb, n, sc, r * per);
                double bS = 0;
                for (int rep = 0; rep < 12 && per > 0; rep++) {
                    long c0 = mx.getCurrentThreadCpuTime();
                    int iters = 20;
                    for (int it = 0; it < iters; it++) for (int r = 0; r < rows; r++) sink += f.dotFloatRow(ws, r * rb, sc, r * per, xf, bsum, xd8, n);
                    long c1 = mx.getCurrentThreadCpuTime();
                    bS = Math.max(bS, (double) rb * rows * iters / (c1 - c0));
                }
                ex = String.format("   float-row dot %6.2f GB/s, with row scales %6.2f GB/s", bF, bS);
            }
            System.out.printf("%-7s dot %6.2f GB/s%s  (%s)%n", tn, best1, ex, sink == 1 ? "" : "ok");
        }
    }
}
