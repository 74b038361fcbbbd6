package dev.lathe.prune;

import dev.lathe.model.Linear;
import dev.lathe.model.Linears;
import dev.lathe.model.Parallel;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Locale;
import java.util.Random;

/**
 * Matvec (decode) benchmark, one thread, CPU time of this thread: dense F32/F16/Q8_0 layers against the
 * sparse formats at several sparsities, each pair run back to back (the machine is shared).
 * Run: java --add-modules=jdk.incubator.vector -cp target/classes:target/test-classes dev.lathe.prune.SparseBench [rows cols]
 */
public final class SparseBench {
    static final ThreadMXBean MX = ManagementFactory.getThreadMXBean();

    public static void main(String[] args) {
        int rows = args.length > 0 ? Integer.parseInt(args[0]) : 2048;
        int cols = args.length > 1 ? Integer.parseInt(args[1]) : 2048;
        int nBatch = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        Parallel pool = new Parallel(1);
        Random rnd = new Random(1);
        float[] x = new float[nBatch * cols];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        float[] y = new float[nBatch * rows];
        System.out.printf(Locale.ROOT, "matrix %dx%d, n=%d, 1 thread, CPU us per call (median of 7 runs)%n", rows, cols, nBatch);
        for (double sp : new double[]{0.5, 0.7, 0.8, 0.9}) {
            float[] w = new float[rows * cols];
            for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
            Pruner.prune(w, Pruner.magnitudeScores(w), rows, cols, Pattern.unstructured(sp), Pruner.Scope.ROW);
            Tensor t32 = TensorOps.ofFloats("w", new long[]{rows, cols}, w);
            Linear d32 = Linears.of(native32(t32), pool);
            Linear d16 = Linears.of(convert(t32, GgmlType.F16), pool);
            Linear dq8 = Linears.of(convert(t32, GgmlType.Q8_0), pool);
            for (ValueType vt : new ValueType[]{ValueType.F32, ValueType.F16, ValueType.Q8}) {
                Linear dense = vt == ValueType.F32 ? d32 : vt == ValueType.F16 ? d16 : dq8;
                Linear sparse = new SparseLinear(SparseMatrix.encode(w, rows, cols, vt), pool);
                report("bitmask", sp, dense, sparse, x, y, nBatch);
            }
        }
        for (int[] p : new int[][]{{2, 4}, {4, 8}, {1, 4}}) {
            float[] w = new float[rows * cols];
            for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
            Pruner.prune(w, Pruner.magnitudeScores(w), rows, cols, Pattern.nm(p[0], p[1]), Pruner.Scope.ROW);
            Tensor t32 = TensorOps.ofFloats("w", new long[]{rows, cols}, w);
            Linear d32 = Linears.of(native32(t32), pool);
            Linear d16 = Linears.of(convert(t32, GgmlType.F16), pool);
            for (ValueType vt : new ValueType[]{ValueType.F32, ValueType.F16}) {
                Linear dense = vt == ValueType.F32 ? d32 : d16;
                Linear bm = new SparseLinear(SparseMatrix.encode(w, rows, cols, vt), pool);
                report(p[0] + ":" + p[1], 1 - (double) p[0] / p[1], dense, bm, x, y, nBatch);
            }
        }
        pool.close();
    }

    static void report(String fmt, double sp, Linear dense, Linear sparse, float[] x, float[] y, int n) {
        double td = 0, ts = 0;
        // interleave the two so both see the same machine load
        double[] a = new double[7], b = new double[7];
        for (int k = 0; k < 7; k++) {
            a[k] = time(dense, x, y, n);
            b[k] = time(sparse, x, y, n);
        }
        java.util.Arrays.sort(a);
        java.util.Arrays.sort(b);
        td = a[3];
        ts = b[3];
        System.out.printf(Locale.ROOT, "%-14s sp=%.2f %-22s dense %-5s %9d B %8.1f us | sparse %9d B %8.1f us | bytes %.2fx speed %.2fx%n",
                fmt, sp, sparse.typeName(), dense.typeName(), dense.storageBytes(), td, sparse.storageBytes(), ts,
                (double) sparse.storageBytes() / dense.storageBytes(), td / ts);
    }

    static double time(Linear l, float[] x, float[] y, int n) {
        for (int i = 0; i < 3; i++) l.forward(x, y, n);
        int reps = 20;
        long t0 = MX.getCurrentThreadCpuTime();
        for (int i = 0; i < reps; i++) l.forward(x, y, n);
        return (MX.getCurrentThreadCpuTime() - t0) / 1e3 / reps;
    }

    static Tensor native32(Tensor t) {
        MemorySegment m = Arena.global().allocate(t.data().byteSize(), 64);
        m.copyFrom(t.data());
        return new Tensor(t.name(), t.type(), t.shape(), m);
    }

    static Tensor convert(Tensor t, GgmlType type) {
        float[] f = TensorOps.toFloats(t);
        MemorySegment m = Arena.global().allocate(type.bytesFor(f.length), 64);
        BlockCodecs.get(type).quantize(f, 0, f.length, null, m, 0);
        return new Tensor(t.name(), type, t.shape(), m);
    }
}
