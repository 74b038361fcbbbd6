package dev.lathe.train;

import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class OptimizerTest {

    @Test
    void adamWMatchesAHandComputedUpdate() {
        TrainModel.Param w = new TrainModel.Param("w", new long[] {2}, new float[] {1.0f, -2.0f}, new float[2], true);
        TrainModel.Param n = new TrainModel.Param("n.weight", new long[] {1}, new float[] {0.5f}, new float[1], false);
        double b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1, lr = 0.01;
        AdamW opt = new AdamW(List.of(w, n), b1, b2, eps, wd, new Parallel(1));
        float[][] grads = {{0.5f, -1.0f, 2.0f}, {0.25f, 3.0f, -0.5f}};
        // hand computation in double
        double[] p = {1.0, -2.0, 0.5}, m = new double[3], v = new double[3];
        boolean[] decay = {true, true, false};
        for (int t = 1; t <= 2; t++) {
            float[] g = grads[t - 1];
            w.grad()[0] = g[0];
            w.grad()[1] = g[1];
            n.grad()[0] = g[2];
            opt.step(lr);
            for (int i = 0; i < 3; i++) {
                if (decay[i]) p[i] *= 1 - lr * wd;
                m[i] = b1 * m[i] + (1 - b1) * g[i];
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
                double mh = m[i] / (1 - Math.pow(b1, t)), vh = v[i] / (1 - Math.pow(b2, t));
                p[i] -= lr * mh / (Math.sqrt(vh) + eps);
            }
        }
        assertThat(opt.steps()).isEqualTo(2);
        assertThat((double) w.data()[0]).isCloseTo(p[0], within(1e-6));
        assertThat((double) w.data()[1]).isCloseTo(p[1], within(1e-6));
        assertThat((double) n.data()[0]).isCloseTo(p[2], within(1e-6));
        // Adam moves each coordinate by about lr per step: the test would notice a missing update
        assertThat(Math.abs(p[2] - 0.5)).isGreaterThan(0.01);
    }

    @Test
    void noWeightDecayOnNormsAndBiases() {
        ModelConfig cfg = new ModelConfig("qwen2", 8, 1, 2, 1, 4, 16, 7, 1e-5f, 1e4f, RopeStyle.HALF, null, 16, false, true);
        TrainModel m = TrainModel.init(cfg, 1, false);
        for (TrainModel.Param p : m.params()) {
            boolean vector = p.shape().length == 1;
            assertThat(p.decay()).as(p.name()).isEqualTo(!vector);
        }
        // zero gradients: only decayed parameters change
        AdamW opt = new AdamW(m.params(), 0.9, 0.95, 1e-8, 0.5);
        float before = m.param("blk.0.attn_q.bias").data()[0] + 1f;
        m.param("blk.0.attn_q.bias").data()[0] = before;
        float wBefore = m.param("blk.0.attn_q.weight").data()[0];
        m.zeroGrad();
        opt.step(0.1);
        assertThat(m.param("blk.0.attn_q.bias").data()[0]).isEqualTo(before);
        assertThat(m.param("blk.0.attn_norm.weight").data()[0]).isEqualTo(1f);
        assertThat(m.param("blk.0.attn_q.weight").data()[0]).isCloseTo(wBefore * 0.95f, within(1e-7f));
    }

    @Test
    void warmupCosineSchedule() {
        LrSchedule s = LrSchedule.warmupCosine(1e-3, 1e-4, 10, 110);
        assertThat(s.lr(0)).isCloseTo(1e-4, within(1e-12));
        assertThat(s.lr(4)).isCloseTo(5e-4, within(1e-12));
        assertThat(s.lr(9)).isCloseTo(1e-3, within(1e-12));
        assertThat(s.lr(10)).isCloseTo(1e-3, within(1e-12));
        assertThat(s.lr(60)).isCloseTo(1e-4 + 0.5 * 9e-4, within(1e-12)); // half way: cos(pi/2) = 0
        assertThat(s.lr(35)).isCloseTo(1e-4 + 0.5 * 9e-4 * (1 + Math.cos(Math.PI * 0.25)), within(1e-12));
        assertThat(s.lr(110)).isCloseTo(1e-4, within(1e-12));
        assertThat(s.lr(500)).isCloseTo(1e-4, within(1e-12));
    }

    @Test
    void clippingByGlobalNorm() {
        TrainModel.Param a = new TrainModel.Param("a", new long[] {2}, new float[2], new float[] {3f, 0f}, true);
        TrainModel.Param b = new TrainModel.Param("b", new long[] {1}, new float[1], new float[] {4f}, true);
        double norm = AdamW.clipGradNorm(List.of(a, b), 1.0);
        assertThat(norm).isCloseTo(5.0, within(1e-12));
        assertThat(AdamW.gradNorm(List.of(a, b))).isCloseTo(1.0, within(1e-5));
        assertThat(a.grad()[0]).isCloseTo(0.6f, within(1e-6f));
        assertThat(b.grad()[0]).isCloseTo(0.8f, within(1e-6f));
        // below the limit: untouched
        double n2 = AdamW.clipGradNorm(List.of(a, b), 10.0);
        assertThat(n2).isCloseTo(1.0, within(1e-5));
        assertThat(b.grad()[0]).isCloseTo(0.8f, within(1e-6f));
    }
}
