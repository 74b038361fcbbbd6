package dev.lathe.prune;

import dev.lathe.model.Linear;
import dev.lathe.model.Linears;
import dev.lathe.model.Parallel;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;

import java.util.Arrays;
import java.util.Locale;
import java.util.Random;

/**
 * Prefill routes of {@link SparseLinear} against the dense F16 layer, one thread, CPU time of this thread
 * (median of 7, each pair back to back): the numbers behind {@link SparseLinear#route}.
 * Run: java --add-modules=jdk.incubator.vector -cp target/classes:target/test-classes dev.lathe.prune.SparseRouteBench [rows cols vt n...]
 */
public final class SparseRouteBench {
    public static void main(String[] args) {
        int rows = args.length > 0 ? Integer.parseInt(args[0]) : 1024;
        int cols = args.length > 1 ? Integer.parseInt(args[1]) : 1024;
        ValueType vt = args.length > 2 ? ValueType.valueOf(args[2]) : ValueType.F16;
        int[] ns = args.length > 3 ? Arrays.stream(args, 3, args.length).mapToInt(Integer::parseInt).toArray() : new int[]{2, 4, 8, 16, 32, 64, 128};
        Parallel pool = new Parallel(1);
        Random rnd = new Random(1);
        System.out.printf(Locale.ROOT, "matrix %dx%d %s values, 1 thread, speed = dense F16 time / route time%n", rows, cols, vt);
        System.out.printf(Locale.ROOT, "%-6s %5s %10s %8s %8s %8s%n", "sp", "n", "dense us", "ROWS", "PANEL", "SPARSE");
        for (double sp : new double[]{0.0, 0.3, 0.5, 0.7, 0.9}) {
            float[] w = new float[rows * cols];
            for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
            if (sp > 0) Pruner.prune(w, Pruner.magnitudeScores(w), rows, cols, Pattern.unstructured(sp), Pruner.Scope.ROW);
            Linear dense = Linears.of(SparseBench.convert(TensorOps.ofFloats("w", new long[]{rows, cols}, w), GgmlType.F16), pool);
            SparseLinear sl = new SparseLinear(SparseMatrix.encode(w, rows, cols, vt), pool);
            for (int n : ns) {
                float[] x = new float[n * cols];
                for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
                float[] y = new float[n * rows];
                double[] d = new double[7];
                double[][] r = new double[3][7];
                for (int k = 0; k < 7; k++) {
                    d[k] = SparseBench.time(dense, x, y, n);
                    for (SparseLinear.Route route : SparseLinear.Route.values()) r[route.ordinal()][k] = time(sl, route, x, y, n);
                }
                Arrays.sort(d);
                for (double[] a : r) Arrays.sort(a);
                System.out.printf(Locale.ROOT, "%-6.2f %5d %10.1f %8.2f %8.2f %8.2f   chosen %s%n", sp, n, d[3], d[3] / r[0][3], d[3] / r[1][3], d[3] / r[2][3], sl.route(n));
            }
        }
        pool.close();
    }

    static double time(SparseLinear l, SparseLinear.Route route, float[] x, float[] y, int n) {
        for (int i = 0; i < 2; i++) l.forward(x, y, n, route);
        int reps = Math.max(3, 2000 / n);
        reps = Math.min(reps, 20);
        long t0 = SparseBench.MX.getCurrentThreadCpuTime();
        for (int i = 0; i < reps; i++) l.forward(x, y, n, route);
        return (SparseBench.MX.getCurrentThreadCpuTime() - t0) / 1e3 / reps;
    }
}
