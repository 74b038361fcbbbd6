package dev.lathe.tensor.quant;

import dev.lathe.tensor.BlockCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.Random;

/**
 * Single-thread quantize time with the scalar and the vector scale searches (not a test; run by hand):
 * {@code java --add-modules=jdk.incubator.vector -cp target/classes:target/test-classes
 * dev.lathe.tensor.quant.ScaleSearchBench [types...]}. Quantizes 256 gaussian rows of 2048 values with an
 * importance vector (the GPTQ/imatrix path) and without (the reference path), alternating the two searches
 * ({@link QuantMath#vectorSearch}), and prints the median CPU milliseconds of 7 runs each and the ratio. The
 * bytes of the two are compared too.
 */
public final class ScaleSearchBench {
    public static void main(String[] args) {
        String[] types = args.length > 0 ? args : new String[] {"Q4_K", "Q5_K", "Q6_K", "Q3_K", "Q2_K"};
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        int n = 2048, rows = 256, reps = 7;
        Random rnd = new Random(42);
        float[] w = new float[n * rows];
        for (int i = 0; i < w.length; i++) w[i] = (float) (0.02 * rnd.nextGaussian());
        float[] imp = new float[n];
        for (int i = 0; i < n; i++) imp[i] = (float) Math.abs(rnd.nextGaussian() * Math.exp(rnd.nextGaussian()));
        System.out.printf("vector search %s, %d x %d values, median of %d runs (CPU ms)%n",
                ScaleSearch.WORTHWHILE ? "on" : "off (preferred vectors under 256 bits: both columns scalar)", rows, n, reps);
        for (String tn : types) {
            GgmlType t = GgmlType.valueOf(tn);
            BlockCodec c = BlockCodecs.get(t);
            long rb = t.bytesFor(n);
            for (float[] importance : new float[][] {imp, null}) {
                MemorySegment[] out = {MemorySegment.ofArray(new byte[(int) (rb * rows)]), MemorySegment.ofArray(new byte[(int) (rb * rows)])};
                double[][] ms = new double[2][reps];
                for (int rep = -2; rep < reps; rep++) {
                    for (int v = 0; v < 2; v++) {
                        QuantMath.vectorSearch = v == 1 && ScaleSearch.WORTHWHILE;
                        long c0 = mx.getCurrentThreadCpuTime();
                        for (int r = 0; r < rows; r++) c.quantize(w, r * n, n, importance, out[v], r * rb);
                        long c1 = mx.getCurrentThreadCpuTime();
                        if (rep >= 0) ms[v][rep] = (c1 - c0) / 1e6;
                    }
                }
                QuantMath.vectorSearch = ScaleSearch.WORTHWHILE;
                boolean same = Arrays.equals(out[0].toArray(ValueLayout.JAVA_BYTE), out[1].toArray(ValueLayout.JAVA_BYTE));
                Arrays.sort(ms[0]);
                Arrays.sort(ms[1]);
                double s = ms[0][reps / 2], v = ms[1][reps / 2];
                System.out.printf("%-5s %-10s scalar %8.1f ms   vector %8.1f ms   x%.2f   %s%n", tn,
                        importance != null ? "importance" : "plain", s, v, s / v, same ? "same bytes" : "BYTES DIFFER");
            }
        }
    }
}
