package dev.lathe.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.lathe.train.TrainerTest.TINY;
import static dev.lathe.train.TrainerTest.TOKENS;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class MaskedTrainingTest {
    @TempDir
    Path dir;

    static TrainConfig.Builder cfg() {
        // weight decay well above the usual so a masked weight would visibly move if decay or momentum reached it
        return TrainConfig.builder().seqLen(32).batchSize(4).steps(30).lr(1e-2).minLr(1e-3).warmupSteps(3)
                .weightDecay(0.3).clipNorm(1.0).seed(7);
    }

    /** Every 2-D block matrix: a random half of its elements masked, as a pruned model would have. */
    static Map<String, ParamMask> randomHalf(TrainModel m, long seed) {
        Map<String, ParamMask> out = new LinkedHashMap<>();
        Random r = new Random(seed);
        for (TrainModel.Param p : m.params()) {
            if (p.shape().length != 2 || !p.name().startsWith("blk.")) continue;
            ParamMask mk = ParamMask.allFree(p.size());
            for (int i = 0; i < p.size(); i++) if (r.nextBoolean()) mk.mask(i);
            out.put(p.name(), mk);
        }
        return out;
    }

    /** 2:4 in every row of every block matrix: two random positions of each group of four are masked. */
    static Map<String, ParamMask> random24(TrainModel m, long seed) {
        Map<String, ParamMask> out = new LinkedHashMap<>();
        Random r = new Random(seed);
        for (TrainModel.Param p : m.params()) {
            if (p.shape().length != 2 || !p.name().startsWith("blk.")) continue;
            ParamMask mk = ParamMask.allFree(p.size());
            for (int g = 0; g < p.size(); g += 4) {
                int a = r.nextInt(4), b = (a + 1 + r.nextInt(3)) % 4;
                mk.mask(g + a);
                mk.mask(g + b);
            }
            out.put(p.name(), mk);
        }
        return out;
    }

    static void assertMaskedAreZero(Trainer t) {
        for (Map.Entry<String, ParamMask> e : t.masks().entrySet()) {
            float[] w = t.model().param(e.getKey()).data();
            for (int i = 0; i < w.length; i++) {
                if (!e.getValue().isFree(i)) assertThat(Float.floatToRawIntBits(w[i])).as(e.getKey() + "[" + i + "]").isZero();
            }
        }
    }

    @Test
    void maskBasics() {
        float[] v = new float[130];
        for (int i = 0; i < v.length; i++) v[i] = i % 3 == 0 ? 0f : i;
        v[7] = -0f;
        ParamMask m = ParamMask.ofNonZeros(v);
        assertThat(m.size()).isEqualTo(130);
        assertThat(m.maskedCount()).isEqualTo(44 + 1);
        assertThat(m.isFree(1)).isTrue();
        assertThat(m.isFree(7)).isFalse();
        assertThat(ParamMask.ofFloats(m.toFloats())).isEqualTo(m);
        float[] ones = new float[130];
        java.util.Arrays.fill(ones, 1f);
        m.apply(ones);
        for (int i = 0; i < 130; i++) assertThat(ones[i]).isEqualTo(m.isFree(i) ? 1f : 0f);
        assertThat(ParamMask.allFree(70).freeCount()).isEqualTo(70);
        assertThat(ParamMask.allFree(0).sparsity()).isZero();
        assertThatThrownBy(() -> m.apply(new float[129])).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void maskedTrainingKeepsZerosExactlyZeroWithWeightDecayAndLowersTheLoss() {
        TrainModel model = TrainModel.init(TINY, 11, true);
        Trainer t = new Trainer(model, cfg().build(), new CrossEntropyLoss(), TOKENS, null, 0);
        Map<String, ParamMask> masks = randomHalf(model, 3);
        t.setMasks(masks);
        assertThat(t.masks()).hasSize(14);
        assertMaskedAreZero(t); // zeroed on setMasks
        Map<String, float[]> before = new LinkedHashMap<>();
        for (TrainModel.Param p : model.params()) before.put(p.name(), p.data().clone());
        List<Double> losses = new ArrayList<>();
        t.run(new TrainListener() {
            @Override
            public void onStep(StepInfo s) {
                losses.add(s.loss());
                assertMaskedAreZero(t);
            }
        });
        assertThat(losses).hasSize(30);
        assertThat(losses.get(29)).isLessThan(losses.get(0) - 1.5);
        // the free weights did train, the masked ones never left zero, and the optimizer's moments stayed zero there
        for (int pi = 0; pi < model.params().size(); pi++) {
            TrainModel.Param p = model.params().get(pi);
            ParamMask mk = masks.get(p.name());
            if (mk == null) continue;
            int changed = 0;
            for (int i = 0; i < p.size(); i++) {
                if (mk.isFree(i)) {
                    if (p.data()[i] != before.get(p.name())[i]) changed++;
                } else {
                    assertThat(t.optimizer().firstMoment(pi)[i]).isZero();
                    assertThat(t.optimizer().secondMoment(pi)[i]).isZero();
                }
            }
            assertThat(changed).as(p.name()).isGreaterThan((int) (0.9 * mk.freeCount()));
        }
    }

    @Test
    void twoFourPatternSurvivesFineTuning() {
        TrainModel model = TrainModel.init(TINY, 12, true);
        Trainer t = new Trainer(model, cfg().steps(15).build(), new CrossEntropyLoss(), TOKENS, null, 0);
        Map<String, ParamMask> masks = random24(model, 5);
        t.setMasks(masks);
        t.run(null);
        for (String n : masks.keySet()) {
            float[] w = model.param(n).data();
            for (int g = 0; g < w.length; g += 4) {
                int nz = 0;
                for (int j = 0; j < 4; j++) {
                    if (w[g + j] != 0f) nz++;
                    if (!masks.get(n).isFree(g + j)) assertThat(Float.floatToRawIntBits(w[g + j])).isZero();
                }
                assertThat(nz).as(n + " group " + g / 4).isLessThanOrEqualTo(2);
            }
        }
    }

    @Test
    void masksAreCheckpointedAndResumeIsBitIdentical() {
        Path ck = dir.resolve("ck");
        TrainConfig c = cfg().steps(12).checkpointEvery(6).checkpointPath(ck).build();
        Trainer straight = new Trainer(TrainModel.init(TINY, 13, true), c.toBuilder().checkpointEvery(0).checkpointPath(null).build(),
                new CrossEntropyLoss(), TOKENS, null, 0);
        straight.setMasks(randomHalf(straight.model(), 9));
        straight.putCheckpointInfo("source", "x");
        straight.run(null);

        Trainer first = new Trainer(TrainModel.init(TINY, 13, true), c, new CrossEntropyLoss(), TOKENS, null, 0);
        first.setMasks(randomHalf(first.model(), 9));
        first.putCheckpointInfo("source", "x");
        first.runUntil(6, null);
        Trainer resumed = Trainer.resume(ck, c, new CrossEntropyLoss(), TOKENS, null, 0);
        assertThat(resumed.masks()).isEqualTo(first.masks());
        assertThat(resumed.checkpointInfo()).containsEntry("source", "x");
        resumed.run(null);
        assertThat(resumed.step()).isEqualTo(12);
        for (int i = 0; i < straight.model().params().size(); i++) {
            assertThat(resumed.model().params().get(i).data()).as(straight.model().params().get(i).name())
                    .containsExactly(straight.model().params().get(i).data());
        }
    }

    @Test
    void masksFromZerosOnlyForMatricesAboveTheThreshold() {
        TrainModel m = TrainModel.init(TINY, 4, true);
        float[] q = m.param("blk.0.attn_q.weight").data(), k = m.param("blk.1.ffn_up.weight").data();
        for (int i = 0; i < q.length; i += 2) q[i] = 0f;  // 50 %
        k[5] = 0f;                                        // one zero
        m.param("blk.0.attn_norm.weight").data()[0] = 0f; // norms are never masked
        Map<String, ParamMask> half = ParamMask.ofZeros(m, 0.01);
        assertThat(half.keySet()).containsExactly("blk.0.attn_q.weight");
        assertThat(half.get("blk.0.attn_q.weight").sparsity()).isEqualTo(0.5);
        assertThat(ParamMask.ofZeros(m, Double.MIN_VALUE).keySet()).containsExactly("blk.0.attn_q.weight", "blk.1.ffn_up.weight");
        assertThatThrownBy(() -> ParamMask.ofZeros(m, 0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void badMasksAreRejected() {
        Trainer t = new Trainer(TrainModel.init(TINY, 1, true), cfg().build(), new CrossEntropyLoss(), TOKENS, null, 0);
        assertThatThrownBy(() -> t.setMasks(Map.of("blk.0.attn_q.weight", ParamMask.allFree(3))))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("blk.0.attn_q.weight");
        assertThatThrownBy(() -> t.setMasks(Map.of("nope", ParamMask.allFree(3))))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("nope");
        assertThatThrownBy(() -> t.putCheckpointInfo("seq_len", "3")).isInstanceOf(IllegalArgumentException.class);
        t.setMasks(Map.of());
        assertThat(t.masks()).isEmpty();
    }
}
