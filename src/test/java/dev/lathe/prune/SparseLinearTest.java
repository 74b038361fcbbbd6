package dev.lathe.prune;

import dev.lathe.model.DenseLinear;
import dev.lathe.model.Parallel;
import dev.lathe.tensor.TensorOps;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SparseLinearTest {
    static final Parallel POOL = new Parallel(2);

    @AfterAll
    static void close() {
        POOL.close();
    }

    static float[] random(int rows, int cols, long seed) {
        Random r = new Random(seed);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) r.nextGaussian();
        return w;
    }

    /** The sparse layer must equal a dense F32 layer over its own decoded weights, for n = 1 and n = 7. */
    static void check(SparseMatrix s, float[] pruned, boolean exactValues) {
        float[] dense = s.toDense();
        if (exactValues) {
            for (int i = 0; i < dense.length; i++) assertEquals(pruned[i], dense[i], 0f, "decoded value " + i);
        } else {
            for (int i = 0; i < dense.length; i++) {
                assertEquals(pruned[i], dense[i], 0.02f * Math.abs(pruned[i]) + 0.03f, "decoded value " + i);
                if (pruned[i] == 0) assertEquals(0f, dense[i], 0f);
            }
        }
        DenseLinear ref = new DenseLinear(TensorOps.ofFloats("w", new long[]{s.rows(), s.cols()}, dense), POOL);
        SparseLinear sl = new SparseLinear(s, POOL);
        for (int n : new int[]{1, 7}) {
            float[] x = random(n, s.cols(), 99 + n);
            float[] a = new float[n * s.rows()], b = new float[n * s.rows()];
            ref.forward(x, a, n);
            sl.forward(x, b, n);
            for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-4f * (1 + Math.abs(a[i])), s.describe() + " n=" + n + " output " + i);
        }
    }

    @Test
    void bitmaskAllValueTypesMatchDense() {
        for (int cols : new int[]{96, 100, 256}) {
            for (double sp : new double[]{0.0, 0.5, 0.8, 0.97}) {
                int rows = 37;
                float[] w = random(rows, cols, cols * 31 + (long) (sp * 100));
                Pruner.prune(w, Pruner.magnitudeScores(w), rows, cols, Pattern.unstructured(sp), Pruner.Scope.ROW);
                for (ValueType vt : ValueType.values()) {
                    if (vt == ValueType.Q8 && cols % 32 != 0) continue;
                    SparseMatrix s = SparseMatrix.encode(w, rows, cols, vt);
                    check(s, w, vt == ValueType.F32);
                    if (vt != ValueType.Q8) assertEquals(w.length - Math.round(Pruner.sparsity(w) * w.length), s.nonZeros());
                    assertEquals(w.length - Math.round(Pruner.sparsity(w) * w.length), s.storedValues());
                }
            }
        }
    }

    @Test
    void nmPatternsMatchDense() {
        int[][] pats = {{2, 4}, {4, 8}, {1, 4}, {2, 8}, {16, 32}};
        for (int[] p : pats) {
            int rows = 21, cols = 128;
            float[] w = random(rows, cols, p[0] * 100 + p[1]);
            Pruner.prune(w, Pruner.magnitudeScores(w), rows, cols, Pattern.nm(p[0], p[1]), Pruner.Scope.ROW);
            assertTrue(Pruner.satisfiesNm(w, cols, p[0], p[1]));
            for (ValueType vt : ValueType.values()) {
                SparseMatrix s = SparseMatrix.encode(w, rows, cols, vt);
                check(s, w, vt == ValueType.F32);
                assertEquals((long) rows * cols * p[0] / p[1], s.storedValues());
            }
        }
    }

    @Test
    void storageShrinksWithSparsity() {
        int rows = 64, cols = 512;
        float[] w = random(rows, cols, 5);
        long dense32 = 4L * rows * cols, dense16 = 2L * rows * cols;
        Pruner.prune(w, Pruner.magnitudeScores(w), rows, cols, Pattern.unstructured(0.5), Pruner.Scope.ROW);
        assertTrue(SparseMatrix.encode(w, rows, cols, ValueType.F32).storageBytes() < dense32 * 0.6);
        assertTrue(SparseMatrix.encode(w, rows, cols, ValueType.F16).storageBytes() < dense16 * 0.6);
        float[] w24 = random(rows, cols, 6);
        Pruner.prune(w24, Pruner.magnitudeScores(w24), rows, cols, Pattern.nm(2, 4), Pruner.Scope.ROW);
        SparseMatrix nm = SparseMatrix.encode(w24, rows, cols, ValueType.F16);
        // 2 bytes per kept value + 1 mask bit per column + 4 bytes per row
        assertEquals(rows * cols / 2 * 2L + rows * cols / 8 + 4L * rows, nm.storageBytes());
    }
}
