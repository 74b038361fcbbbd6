package dev.lathe.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class VectorKernelsTest {
    @Test
    void dot4x4MatchesSixteenDots() {
        Random rnd = new Random(3);
        for (int n : new int[] {1, 7, 16, 33, 256, 301}) {
            float[] x = new float[9 * n + 5];
            for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
            double[] out = new double[16];
            int a = 3, b = 3 + 4 * n + 2;
            VectorKernels.dot4x4F32(x, a, b, n, out);
            for (int i = 0; i < 4; i++) {
                for (int j = 0; j < 4; j++) {
                    double exact = 0;
                    for (int k = 0; k < n; k++) exact += (double) x[a + i * n + k] * x[b + j * n + k];
                    assertThat(out[4 * i + j]).as("n=%d (%d,%d)", n, i, j).isCloseTo(exact, within(1e-4 * Math.sqrt(n)));
                }
            }
        }
    }
}
