package dev.lathe.compress;

import dev.lathe.model.Parallel;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class PanelLinearTest {
    @Test
    void matchesTheProductForAnyShape() {
        Random rnd = new Random(9);
        for (int[] s : new int[][] {{1, 8, 16}, {3, 13, 5}, {17, 64, 40}, {33, 24, 100}, {70, 19, 33}}) {
            int n = s[0], out = s[1], in = s[2];
            float[] w = new float[out * in], x = new float[n * in], y = new float[n * out];
            for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
            for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
            new PanelLinear(w, out, in, Parallel.common()).forward(x, y, n);
            for (int i = 0; i < n; i++) {
                for (int r = 0; r < out; r++) {
                    double e = 0;
                    for (int k = 0; k < in; k++) e += (double) w[r * in + k] * x[i * in + k];
                    assertThat((double) y[i * out + r]).as("n=%d out=%d in=%d (%d,%d)", n, out, in, i, r).isCloseTo(e, within(1e-4 * Math.sqrt(in)));
                }
            }
        }
    }
}
