package dev.lathe.prune;

import dev.lathe.LatheException;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.TensorMapSource;
import dev.lathe.model.WeightSource;
import dev.lathe.train.TrainConfig;
import dev.lathe.train.TrainListener;
import dev.lathe.train.TrainModel;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

class IterativePrunerTest {
    static final ModelConfig TINY = new ModelConfig("llama", 32, 2, 4, 2, 8, 64, 259, 1e-5f, 10000f, RopeStyle.HALF, null,
            64, false, false);

    /** UTF-8 bytes + 3, the byte vocabulary of TINY. */
    static int[] tokens(String text) {
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[b.length];
        for (int i = 0; i < b.length; i++) ids[i] = 3 + (b[i] & 0xFF);
        return ids;
    }

    static final int[] TRAIN = tokens("the quick brown fox jumps over the lazy dog. a cat sat on the mat and ran. ".repeat(30));
    static final int[] VAL = tokens("the lazy cat jumps over the quick dog and sat on the mat. ".repeat(3));

    static WeightSource tinySource(long seed) {
        TrainModel m = TrainModel.init(TINY, seed, true);
        return new TensorMapSource(Path.of("tiny"), TINY, m.toTensors(), null);
    }

    static TrainConfig recovery(long steps) {
        return TrainConfig.builder().seqLen(32).batchSize(2).steps(steps).lr(5e-3).minLr(5e-4).warmupSteps(1).weightDecay(0.1).seed(3).build();
    }

    @Test
    void cubicAndLinearSchedules() {
        double[] c = IterativePruner.sparsities(IterativePruner.Schedule.CUBIC, 0.7, 4);
        assertThat(c[0]).isCloseTo(0.7 * (1 - 0.421875), within(1e-12)); // 0.4047
        assertThat(c[1]).isCloseTo(0.7 * 0.875, within(1e-12));            // 0.6125
        assertThat(c[2]).isCloseTo(0.7 * (1 - 0.015625), within(1e-12));  // 0.6891
        assertThat(c[3]).isEqualTo(0.7);
        assertThat(IterativePruner.sparsities(IterativePruner.Schedule.LINEAR, 0.7, 4)).containsExactly(new double[]{0.175, 0.35, 0.525, 0.7}, within(1e-12));
        assertThat(IterativePruner.sparsities(IterativePruner.Schedule.CUBIC, 0.5, 1)).containsExactly(0.5);
        assertThat(IterativePruner.Schedule.parse("Linear")).isEqualTo(IterativePruner.Schedule.LINEAR);
        assertThatThrownBy(() -> IterativePruner.Schedule.parse("exp")).isInstanceOf(LatheException.class);
        assertThatThrownBy(() -> IterativePruner.sparsities(IterativePruner.Schedule.CUBIC, 0.5, 0)).isInstanceOf(LatheException.class);
    }

    @Test
    void roundsFollowTheScheduleReachTheExactTargetAndRecover() {
        List<String> names = new ArrayList<>();
        List<double[]> pruned = new ArrayList<>();
        try (WeightSource src = tinySource(21)) {
            ModelPruner.Options po = ModelPruner.Options.magnitude(Pattern.unstructured(0.7));
            names.addAll(ModelPruner.targets(src, po));
            long[] sizes = names.stream().mapToLong(n -> src.tensor(n).numElements()).toArray();
            IterativePruner.Options o = new IterativePruner.Options(po, 4, IterativePruner.Schedule.CUBIC, recovery(6), TRAIN, VAL, VAL.length);
            int[] steps = {0};
            IterativePruner.Result r = IterativePruner.run(src, o, new IterativePruner.Listener() {
                @Override
                public void onPruned(int round, int rounds, double target, double sparsity) {
                    pruned.add(new double[]{round, target, sparsity});
                }

                @Override
                public void onStep(int round, int rounds, TrainListener.StepInfo s) {
                    steps[0]++;
                }
            }, dev.lathe.io.Progress.NONE);
            double[] sched = IterativePruner.sparsities(IterativePruner.Schedule.CUBIC, 0.7, 4);
            assertThat(steps[0]).isEqualTo(24);
            assertThat(r.rounds()).hasSize(4);
            for (int i = 0; i < 4; i++) {
                IterativePruner.Round rd = r.rounds().get(i);
                assertThat(rd.targetSparsity()).isEqualTo(sched[i]);
                // layer scope: exactly floor(s·n) zeros in each matrix, after pruning and still after recovery
                long want = 0;
                for (long n : sizes) want += (long) Math.floor(sched[i] * n);
                assertThat(rd.zeros()).as("round " + (i + 1)).isEqualTo(want);
                assertThat(pruned.get(i)[2]).isEqualTo((double) want / java.util.Arrays.stream(sizes).sum());
                assertThat(rd.recoveredValLoss()).as("round " + (i + 1)).isLessThan(rd.prunedValLoss());
            }
            ModelPruner.Result res = r.result();
            for (ModelPruner.TensorStat s : res.stats()) {
                assertThat(s.zeros()).as(s.name()).isEqualTo((long) Math.floor(0.7 * s.rows() * s.cols()));
            }
            // the result carries the fine-tuned norms and head too, not the input's
            assertThat(dev.lathe.tensor.TensorOps.toFloats(res.source().tensor("output_norm.weight")))
                    .isNotEqualTo(dev.lathe.tensor.TensorOps.toFloats(src.tensor("output_norm.weight")));
            assertThat(res.source().prunedNames()).containsExactlyElementsOf(names);
        }
    }

    @Test
    void laterRoundsOnlyAddZeros() {
        try (WeightSource src = tinySource(22)) {
            ModelPruner.Options po = ModelPruner.Options.magnitude(Pattern.unstructured(0.6));
            IterativePruner.Result two = IterativePruner.run(src, new IterativePruner.Options(po, 2, IterativePruner.Schedule.LINEAR, recovery(4), TRAIN, null, 0),
                    null, dev.lathe.io.Progress.NONE);
            IterativePruner.Result one = IterativePruner.run(src, new IterativePruner.Options(
                    ModelPruner.Options.magnitude(Pattern.unstructured(0.3)), 1, IterativePruner.Schedule.LINEAR, recovery(4), TRAIN, null, 0),
                    null, dev.lathe.io.Progress.NONE);
            // round 1 of the two-round run is the one-round run at 0.3 (same data seed, same steps): its zeros stay zero
            for (String n : one.result().source().prunedNames()) {
                float[] a = one.result().source().weights(n), b = two.result().source().weights(n);
                for (int i = 0; i < a.length; i++) if (a[i] == 0f) assertThat(b[i]).as(n + "[" + i + "]").isZero();
            }
            assertThat(Double.isNaN(two.rounds().get(0).prunedValLoss())).isTrue(); // no validation data
        }
    }

    @Test
    void oneRoundAllowsNmPatternsAndKeepsThem() {
        try (WeightSource src = tinySource(23)) {
            ModelPruner.Options po = ModelPruner.Options.magnitude(Pattern.nm(2, 4));
            IterativePruner.Result r = IterativePruner.run(src, new IterativePruner.Options(po, 1, IterativePruner.Schedule.CUBIC, recovery(5), TRAIN, null, 0),
                    null, dev.lathe.io.Progress.NONE);
            for (String n : r.result().source().prunedNames()) {
                float[] w = r.result().source().weights(n);
                for (int g = 0; g < w.length; g += 4) {
                    int nz = 0;
                    for (int j = 0; j < 4; j++) if (w[g + j] != 0f) nz++;
                    assertThat(nz).isLessThanOrEqualTo(2);
                }
            }
            assertThat(r.result().sparsity()).isEqualTo(0.5);
        }
    }

    @Test
    void unsupportedCombinationsAreRejected() {
        TrainConfig tc = recovery(2);
        assertThatThrownBy(() -> new IterativePruner.Options(ModelPruner.Options.magnitude(Pattern.nm(2, 4)), 2,
                IterativePruner.Schedule.CUBIC, tc, TRAIN, null, 0)).isInstanceOf(LatheException.class).hasMessageContaining("N:M");
        ModelPruner.Options wanda = new ModelPruner.Options(ModelPruner.Method.WANDA, Pattern.unstructured(0.5), ModelPruner.Scope.ROW,
                false, false, List.of(), Map.of());
        assertThatThrownBy(() -> new IterativePruner.Options(wanda, 3, IterativePruner.Schedule.CUBIC, tc, TRAIN, null, 0))
                .isInstanceOf(LatheException.class).hasMessageContaining("magnitude");
        assertThatThrownBy(() -> new IterativePruner.Options(ModelPruner.Options.magnitude(Pattern.unstructured(0.5)), 0,
                IterativePruner.Schedule.CUBIC, tc, TRAIN, null, 0)).isInstanceOf(LatheException.class);
        assertThatThrownBy(() -> new IterativePruner.Options(ModelPruner.Options.magnitude(Pattern.unstructured(0.5)), 2,
                IterativePruner.Schedule.CUBIC, tc, new int[10], null, 0)).isInstanceOf(LatheException.class).hasMessageContaining("training tokens");
    }
}
