package dev.lathe.compress;

import dev.lathe.model.Parallel;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class InputStatsTest {
    @Test
    void hessianIsXTransposeXOverAllCalls() {
        Random rnd = new Random(5);
        for (int n : new int[] {1, 5, 8, 33, 64, 100}) {
            InputStats st = new InputStats(n, true);
            double[] exact = new double[n * n];
            double[] sumSq = new double[n];
            long tokens = 0;
            for (int rows : new int[] {1, 7, 40}) {
                float[] x = new float[rows * n];
                for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
                st.add(x, rows, Parallel.common());
                tokens += rows;
                for (int r = 0; r < rows; r++) {
                    for (int i = 0; i < n; i++) {
                        sumSq[i] += (double) x[r * n + i] * x[r * n + i];
                        for (int j = 0; j < n; j++) exact[i * n + j] += (double) x[r * n + i] * x[r * n + j];
                    }
                }
            }
            double[] h = st.hessian();
            for (int i = 0; i < n * n; i++) assertThat(h[i]).as("n=%d at %d", n, i).isCloseTo(exact[i], within(1e-4 * (1 + Math.abs(exact[i]))));
            for (int i = 0; i < n; i++) assertThat(h[i * n + i]).isCloseTo(sumSq[i], within(1e-4 * sumSq[i]));
            assertThat(st.tokens).isEqualTo(tokens);
            assertThat(st.calls).isEqualTo(3);
            assertThat(st.importance()[0]).isCloseTo((float) (sumSq[0] / tokens), within(1e-4f));
        }
        assertThat(new InputStats(4, false).hessian()).isNull();
    }
}
