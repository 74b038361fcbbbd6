package dev.lathe.prune;

import dev.lathe.LatheException;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

class OwlTest {
    @Test
    void sparsitiesAverageToTheTargetStayInRangeAndFollowTheOutliers() {
        SplittableRandom rnd = new SplittableRandom(3);
        for (double target : new double[]{0.3, 0.5, 0.8}) {
            double[] ratios = new double[12];
            for (int i = 0; i < ratios.length; i++) ratios[i] = 0.001 + 0.02 * rnd.nextDouble();
            double[] s = Owl.allocate(ratios, target, 0.08);
            assertThat(Arrays.stream(s).average().orElseThrow()).isCloseTo(target, within(1e-9));
            for (double v : s) assertThat(v).isBetween(0.0, Owl.MAX).isBetween(target - 0.16, target + 0.16);
            assertThat(Arrays.stream(s).max().orElseThrow() - Arrays.stream(s).min().orElseThrow()).isCloseTo(0.16, within(1e-9));
            for (int i = 0; i < s.length; i++) {
                for (int j = 0; j < s.length; j++) {
                    if (ratios[i] > ratios[j]) assertThat(s[i]).as("more outliers, fewer weights pruned").isLessThan(s[j]);
                }
            }
        }
    }

    @Test
    void clippedLayersShiftTheOthersAndEqualRatiosGiveUniform() {
        double[] ratios = {0.0, 0.01, 0.02, 0.03, 0.04, 0.05};
        double[] s = Owl.allocate(ratios, 0.95, 0.08);
        assertThat(Arrays.stream(s).average().orElseThrow()).isCloseTo(0.95, within(1e-9));
        for (double v : s) assertThat(v).isBetween(0.0, Owl.MAX);
        assertThat(s[0]).isEqualTo(Owl.MAX);
        double[] low = Owl.allocate(ratios, 0.02, 0.08);
        assertThat(Arrays.stream(low).average().orElseThrow()).isCloseTo(0.02, within(1e-9));
        for (double v : low) assertThat(v).isGreaterThanOrEqualTo(0.0);
        assertThat(Owl.allocate(new double[]{0.1, 0.1, 0.1}, 0.6, 0.08)).containsExactly(0.6, 0.6, 0.6);
        assertThat(Owl.allocate(ratios, 0.6, 0)).containsOnly(0.6);
        assertThatThrownBy(() -> Owl.allocate(ratios, 1.0, 0.08)).isInstanceOf(LatheException.class);
        assertThatThrownBy(() -> Owl.allocate(ratios, 0.5, -0.1)).isInstanceOf(LatheException.class);
    }

    @Test
    void outlierRatioCountsWandaScoresAboveMTimesTheMean() {
        int rows = 10, cols = 100;
        float[] w = new float[rows * cols];
        Arrays.fill(w, 0.5f);
        for (int k = 0; k < 7; k++) w[k * 97] = -60f; // seven large weights
        float[] norms = new float[cols];
        Arrays.fill(norms, 2f);
        Owl.Counter c = new Owl.Counter(5);
        c.addMean(w, rows, cols, norms);
        c.addCount(w, rows, cols, norms);
        assertThat(c.ratio()).isEqualTo(7 / 1000.0);
        // a large input norm makes a column's weights outliers as well (Wanda's score)
        norms[3] = 400f;
        Owl.Counter d = new Owl.Counter(5);
        d.addMean(w, rows, cols, norms);
        d.addCount(w, rows, cols, norms);
        assertThat(d.ratio()).isGreaterThan(c.ratio());
    }
}
