package dev.lathe.train;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class KernelsTest {

    private static float[] randn(long seed, int n) {
        Rng r = new Rng(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    @Test
    void matrixProductMatchesDoubleReferenceOnAwkwardShapesAndIsThreadCountIndependent() {
        int[][] shapes = {{1, 1, 1}, {7, 5, 3}, {70, 131, 300}, {4, 64, 520}, {133, 259, 64}, {5, 17, 1}};
        for (int[] sh : shapes) {
            int m = sh[0], n = sh[1], k = sh[2];
            float[] a = randn(1 + m, m * k), b = randn(2 + n, k * n), c0 = randn(3, m * n);
            float[] c1 = c0.clone(), c3 = c0.clone(), plain = new float[m * n];
            Kernels.nn(new Parallel(1), a, 0, b, 0, c1, 0, n, m, n, k, true);
            Kernels.nn(new Parallel(3), a, 0, b, 0, c3, 0, n, m, n, k, true);
            Kernels.nn(new Parallel(2), a, 0, b, 0, plain, 0, n, m, n, k, false);
            assertThat(c3).containsExactly(c1);
            float[] at = new float[k * m], viaT = new float[m * n];
            Kernels.transpose(new Parallel(1), a, 0, m, k, at, 0);
            Kernels.tn(new Parallel(2), at, 0, b, 0, viaT, 0, n, m, n, k, false);
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++) s += (double) a[i * k + p] * b[p * n + j];
                    double tol = 1e-5 * Math.sqrt(k) * 4;
                    assertThat((double) plain[i * n + j]).isCloseTo(s, org.assertj.core.data.Offset.offset(tol));
                    assertThat((double) c1[i * n + j]).isCloseTo(s + c0[i * n + j], org.assertj.core.data.Offset.offset(tol));
                    // the documented fma chain, exactly
                    float f = 0f;
                    for (int p = 0; p < k; p++) f = Math.fma(a[i * k + p], b[p * n + j], f);
                    assertThat(plain[i * n + j]).isEqualTo(f);
                    assertThat(viaT[i * n + j]).isEqualTo(f);
                }
            }
        }
    }

    @Test
    void transposeDotAxpy() {
        float[] x = randn(4, 6 * 35);
        float[] t = new float[x.length];
        Kernels.transpose(new Parallel(2), x, 0, 6, 35, t, 0);
        for (int r = 0; r < 6; r++) for (int c = 0; c < 35; c++) assertThat(t[c * 6 + r]).isEqualTo(x[r * 35 + c]);
        float[] y = randn(5, 37);
        double s = 0;
        for (int i = 0; i < 37; i++) s += (double) x[i + 1] * y[i];
        assertThat((double) Kernels.dot(x, 1, y, 0, 37)).isCloseTo(s, org.assertj.core.data.Offset.offset(1e-4));
        float[] z = y.clone();
        Kernels.axpy(0.5f, x, 2, z, 0, 37);
        for (int i = 0; i < 37; i++) assertThat(z[i]).isEqualTo(y[i] + 0.5f * x[i + 2]);
    }
}
