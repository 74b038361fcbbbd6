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

    /** The dense layout of a sparse matrix holds exactly its values (Q8: Q8_0 blocks of the same scales and int8s). */
    @Test
    void denseTensorIsExact() {
        for (int cols : new int[]{96, 100, 256}) {
            for (double sp : new double[]{0.0, 0.5, 0.9, 1.0}) {
                int rows = 19;
                float[] w = random(rows, cols, cols * 7 + (long) (sp * 10));
                Pruner.prune(w, Pruner.magnitudeScores(w), rows, cols, Pattern.unstructured(Math.min(sp, 0.999)), Pruner.Scope.ROW);
                if (sp == 1.0) java.util.Arrays.fill(w, 0f);
                for (ValueType vt : ValueType.values()) {
                    if (vt == ValueType.Q8 && cols % 32 != 0) continue;
                    SparseMatrix s = SparseMatrix.encode(w, rows, cols, vt);
                    dev.lathe.tensor.Tensor t = s.toDenseTensor("w");
                    assertEquals(vt == ValueType.Q8 ? "Q8_0" : vt.name(), t.type().name());
                    assertEquals(s.denseBytes(), t.data().byteSize());
                    float[] got = TensorOps.toFloats(t), want = s.toDense();
                    for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 0f, vt + " sp=" + sp + " value " + i);
                    // and it runs: the dense layer over it gives the sparse layer's outputs
                    dev.lathe.model.Linear d = dev.lathe.model.Linears.of(t, POOL);
                    float[] x = random(1, cols, 5), a = new float[rows], b = new float[rows];
                    d.forward(x, a, 1);
                    new SparseLinear(s, POOL).forward(x, b, 1);
                    for (int i = 0; i < rows; i++) {
                        // Q8_0 layers quantize the activations to int8 per 32 (llama.cpp's way): at most 1/254 of each |x|
                        double abs = 0;
                        for (int c = 0; c < cols; c++) abs += Math.abs(want[i * cols + c] * x[c]);
                        double tol = 1e-4 * (1 + Math.abs(b[i])) + (vt == ValueType.Q8 ? abs / 127 : 0);
                        assertEquals(b[i], a[i], tol, vt + " row " + i);
                    }
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

    /** y = x W^T in double for n rows, and per output the sum of |w x| (the scale of its rounding error). */
    static double[][] reference(float[] dense, int rows, int cols, float[] x, int n) {
        double[] y = new double[n * rows], mag = new double[n * rows];
        for (int i = 0; i < n; i++) {
            for (int r = 0; r < rows; r++) {
                double s = 0, m = 0;
                for (int c = 0; c < cols; c++) {
                    double p = (double) dense[r * cols + c] * x[i * cols + c];
                    s += p;
                    m += Math.abs(p);
                }
                y[i * rows + r] = s;
                mag[i * rows + r] = m;
            }
        }
        return new double[][]{y, mag};
    }

    /** Every prefill route (and the chosen one) against the double product of the decoded weights. */
    static void checkRoutes(SparseMatrix s, String what) {
        float[] dense = s.toDense();
        SparseLinear sl = new SparseLinear(s, POOL);
        for (int n : new int[]{1, 2, 3, 5, 17, 33, 64, 68, 70}) {
            float[] x = random(n, s.cols(), 7 * n + s.cols());
            double[][] ref = reference(dense, s.rows(), s.cols(), x, n);
            for (SparseLinear.Route route : SparseLinear.Route.values()) {
                float[] y = new float[n * s.rows()];
                java.util.Arrays.fill(y, Float.NaN);
                sl.forward(x, y, n, route);
                for (int i = 0; i < y.length; i++) {
                    assertEquals(ref[0][i], y[i], 2e-6 * ref[1][i] + 1e-30, what + " " + route + " n=" + n + " output " + i);
                }
            }
            float[] y = new float[n * s.rows()];
            sl.forward(x, y, n);
            for (int i = 0; i < y.length; i++) assertEquals(ref[0][i], y[i], 2e-6 * ref[1][i] + 1e-30, what + " chosen route n=" + n);
        }
    }

    /** A pruned matrix with one all-zero row, one row with no zero and (when {@code denseRows}) more full rows. */
    static float[] prunedWithEmptyAndFullRows(int rows, int cols, Pattern pattern, long seed) {
        float[] w = random(rows, cols, seed);
        float[] full = random(rows, cols, seed + 1);
        Pruner.prune(w, Pruner.magnitudeScores(w), rows, cols, pattern, Pruner.Scope.ROW);
        for (int c = 0; c < cols; c++) {
            w[3 * cols + c] = 0f;
            w[5 * cols + c] = full[5 * cols + c];
            w[(rows - 1) * cols + c] = full[(rows - 1) * cols + c];
        }
        return w;
    }

    @Test
    void prefillRoutesMatchDenseForAllValueTypes() {
        // 100 and 300 columns: not multiples of 64 (300 spans three column chunks); Q8 needs multiples of 32
        // (160, 288); 37 rows: two row blocks, the second partial
        int rows = 37;
        for (int cols : new int[]{100, 160, 288, 300}) {
            for (double sp : new double[]{0.5, 0.7, 0.9}) {
                float[] w = prunedWithEmptyAndFullRows(rows, cols, Pattern.unstructured(sp), cols + (long) (sp * 1000));
                for (ValueType vt : ValueType.values()) {
                    if (vt == ValueType.Q8 && cols % 32 != 0) continue;
                    SparseMatrix s = SparseMatrix.encode(w, rows, cols, vt);
                    assertEquals(0, s.rowCount(3));
                    assertEquals(cols, s.rowCount(5));
                    checkRoutes(s, vt + " " + cols + " cols sparsity " + sp);
                }
            }
        }
    }

    @Test
    void prefillRoutesMatchDenseFor24() {
        int rows = 37;
        for (int cols : new int[]{160, 300}) {
            float[] w = prunedWithEmptyAndFullRows(rows, cols, Pattern.nm(2, 4), cols);
            for (ValueType vt : ValueType.values()) {
                if (vt == ValueType.Q8 && cols % 32 != 0) continue;
                checkRoutes(SparseMatrix.encode(w, rows, cols, vt), vt + " 2:4 " + cols + " cols");
            }
        }
    }

    @Test
    void prefillOfAllZeroMatrixIsZero() {
        int rows = 40, cols = 96;
        for (ValueType vt : ValueType.values()) {
            SparseLinear sl = new SparseLinear(SparseMatrix.encode(new float[rows * cols], rows, cols, vt), POOL);
            for (int n : new int[]{2, 17, 70}) {
                float[] x = random(n, cols, n);
                for (SparseLinear.Route route : SparseLinear.Route.values()) {
                    float[] y = new float[n * rows];
                    java.util.Arrays.fill(y, 1f);
                    sl.forward(x, y, n, route);
                    for (float v : y) assertEquals(0f, v, 0f, vt + " " + route + " n=" + n);
                }
            }
        }
    }

    @Test
    void routeFollowsSparsityAndBatch() {
        int rows = 64, cols = 512;
        float[] w = random(rows, cols, 11);
        SparseLinear denseish = new SparseLinear(SparseMatrix.encode(w, rows, cols, ValueType.F16), POOL);
        Pruner.prune(w, Pruner.magnitudeScores(w), rows, cols, Pattern.unstructured(0.9), Pruner.Scope.ROW);
        SparseLinear sparse = new SparseLinear(SparseMatrix.encode(w, rows, cols, ValueType.F16), POOL);
        assertEquals(SparseLinear.Route.ROWS, sparse.route(1));
        for (int n : new int[]{2, 8, 17, 64, 70, 128}) assertEquals(SparseLinear.Route.SPARSE, sparse.route(n), "90 % n=" + n);
        // nothing to skip: expanding to dense panels wins for small batches
        assertEquals(SparseLinear.Route.PANEL, denseish.route(8));
        assertEquals(SparseLinear.Route.PANEL, denseish.route(17));
    }
}
