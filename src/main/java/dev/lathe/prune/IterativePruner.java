package dev.lathe.prune;

import dev.lathe.LatheException;
import dev.lathe.io.Progress;
import dev.lathe.model.WeightSource;
import dev.lathe.train.CrossEntropyLoss;
import dev.lathe.train.ParamMask;
import dev.lathe.train.TrainConfig;
import dev.lathe.train.TrainListener;
import dev.lathe.train.TrainModel;
import dev.lathe.train.TrainedWeights;
import dev.lathe.train.Trainer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Gradual pruning with recovery: the sparsity rises over {@code rounds} rounds to the target, and after each
 * round's pruning the model is fine-tuned for {@code recovery.steps()} steps with the pruned weights held at
 * zero ({@link ParamMask}), so the next round ranks weights that have adapted to the ones already removed.
 *
 * <p>Round r of R prunes to
 * <ul>
 *   <li>{@link Schedule#CUBIC} (Zhu &amp; Gupta 2017, "To prune, or not to prune", with initial sparsity 0 and
 *   one pruning step per round): {@code s_r = s·(1 − (1 − r/R)³)} — large steps first, while the model has the
 *   most redundancy, small ones near the target. For 0.7 in 4 rounds: 0.4047, 0.6125, 0.6891, 0.7.</li>
 *   <li>{@link Schedule#LINEAR}: {@code s_r = s·r/R} (0.175, 0.35, 0.525, 0.7).</li>
 * </ul>
 * Each round ranks by magnitude over the current weights with the options' scope, so the zeros of earlier
 * rounds (score 0) stay pruned and the mask only grows; the last round reaches exactly what one-shot
 * pruning to the target counts ({@code floor(s·n)} per matrix for the layer scope). Recovery runs after every
 * round, the last included, so the total is {@code rounds × recovery.steps()} steps; each round gets its own
 * optimizer state and warm-up + cosine schedule and data seed {@code recovery.seed() + r − 1}. One round is
 * one-shot pruning followed by recovery, which also works for N:M patterns and Wanda; several rounds need
 * magnitude scores and an unstructured target (Wanda's calibration norms would go stale after a round).
 */
public final class IterativePruner {
    private IterativePruner() {}

    public enum Schedule {
        CUBIC, LINEAR;

        public static Schedule parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "cubic" -> CUBIC;
                case "linear" -> LINEAR;
                default -> throw new LatheException("schedule must be cubic or linear, not '" + s + "'");
            };
        }
    }

    /** The sparsity each round prunes to; the last is exactly {@code target}. */
    public static double[] sparsities(Schedule s, double target, int rounds) {
        if (rounds < 1) throw new LatheException("rounds must be at least 1, got " + rounds);
        if (!(target >= 0 && target < 1)) throw new LatheException("target sparsity must be in [0, 1), got " + target);
        double[] out = new double[rounds];
        for (int r = 1; r <= rounds; r++) {
            double f = (double) r / rounds;
            out[r - 1] = r == rounds ? target : s == Schedule.CUBIC ? target * (1 - Math.pow(1 - f, 3)) : target * f;
        }
        return out;
    }

    /**
     * @param prune      what to prune and how (the pattern is the final target)
     * @param recovery   fine-tuning settings of one round ({@code steps} per round; 0 steps: no recovery)
     * @param validation validation tokens (null: none), scored after each round's pruning and recovery
     */
    public record Options(ModelPruner.Options prune, int rounds, Schedule schedule, TrainConfig recovery,
                          int[] trainTokens, int[] validation, long validationBytes) {
        public Options {
            if (rounds < 1) throw new LatheException("--iterative needs at least 1 round, got " + rounds);
            if (rounds > 1 && prune.pattern().isNm()) {
                throw new LatheException("an N:M pattern is reached in one step; iterate on an unstructured --sparsity, or use one round with recovery");
            }
            if (rounds > 1 && prune.method() != ModelPruner.Method.MAGNITUDE) {
                throw new LatheException("iterative pruning re-ranks the fine-tuned weights each round and needs --method magnitude (Wanda's norms would be stale after the first round)");
            }
            if (recovery.steps() > 0 && (trainTokens == null || trainTokens.length < recovery.seqLen() + 1)) {
                throw new LatheException("recovery needs at least " + (recovery.seqLen() + 1) + " training tokens, got "
                        + (trainTokens == null ? 0 : trainTokens.length));
            }
        }
    }

    /** One round's outcome; validation figures are NaN without validation data. */
    public record Round(int round, double targetSparsity, double sparsity, long zeros, long recoverySteps, double lastTrainLoss,
                        double prunedValLoss, double prunedValBpb, double recoveredValLoss, double recoveredValBpb) {}

    /** Progress callbacks; every method has an empty default. */
    public interface Listener {
        default void onPruned(int round, int rounds, double targetSparsity, double sparsity) {}

        default void onStep(int round, int rounds, TrainListener.StepInfo step) {}

        default void onRound(Round round) {}
    }

    /** The pruned, recovered model ({@link ModelPruner.Result}, so the one-shot writers save it) and each round. */
    public record Result(ModelPruner.Result result, List<Round> rounds) {}

    /**
     * Runs every round on a trainable F32 copy of {@code src} and returns the final model over {@code src}
     * (which must stay open while the result is written).
     */
    public static Result run(WeightSource src, Options o, Listener listener, Progress progress) {
        Listener l = listener == null ? new Listener() {} : listener;
        List<String> targets = ModelPruner.targets(src, o.prune());
        double[] sched = sparsities(o.schedule(), o.prune().pattern().sparsity(), o.rounds());
        TrainModel model = TrainModel.load(src);
        List<Round> rounds = new ArrayList<>();
        for (int r = 1; r <= o.rounds(); r++) {
            // prune the current weights with the one-shot pruner, then copy the result back
            Pattern pr = o.prune().pattern().isNm() ? o.prune().pattern() : Pattern.unstructured(sched[r - 1]);
            ModelPruner.Options po = new ModelPruner.Options(o.prune().method(), pr, o.prune().scope(), o.prune().pruneEmbeddings(),
                    o.prune().pruneHead(), o.prune().tensors(), o.prune().columnNorms());
            ModelPruner.Result pruned = ModelPruner.prune(TrainedWeights.of(model, src), po, progress);
            Map<String, ParamMask> masks = new LinkedHashMap<>();
            for (String n : targets) {
                float[] w = model.param(n).data();
                System.arraycopy(pruned.source().weights(n), 0, w, 0, w.length);
                masks.put(n, ParamMask.ofNonZeros(w));
            }
            l.onPruned(r, o.rounds(), pr.sparsity(), pruned.sparsity());
            final int round = r;
            double[] lastLoss = {Double.NaN};
            TrainListener.ValidationInfo before = null, after = null;
            long steps = o.recovery().steps();
            if (steps > 0) {
                TrainConfig tc = o.recovery().toBuilder().seed(o.recovery().seed() + r - 1).evalEvery(0).build();
                Trainer t = new Trainer(model, tc, new CrossEntropyLoss(), o.trainTokens(), o.validation(), o.validationBytes());
                t.setMasks(masks);
                if (o.validation() != null) before = t.validate();
                t.run(new TrainListener() {
                    @Override
                    public void onStep(StepInfo s) {
                        lastLoss[0] = s.loss();
                        l.onStep(round, o.rounds(), s);
                    }
                });
                if (o.validation() != null) after = t.validate();
            }
            long zeros = 0, total = 0;
            for (String n : targets) {
                float[] w = model.param(n).data();
                total += w.length;
                for (float v : w) if (v == 0f) zeros++;
            }
            Round rd = new Round(r, pr.sparsity(), total == 0 ? 0 : (double) zeros / total, zeros, steps, lastLoss[0],
                    before == null ? Double.NaN : before.loss(), before == null ? Double.NaN : before.bitsPerByte(),
                    after == null ? Double.NaN : after.loss(), after == null ? Double.NaN : after.bitsPerByte());
            rounds.add(rd);
            l.onRound(rd);
        }
        TrainedWeights trained = TrainedWeights.of(model, src);
        Map<String, float[]> w = new LinkedHashMap<>();
        List<ModelPruner.TensorStat> stats = new ArrayList<>();
        for (String n : targets) {
            float[] v = model.param(n).data().clone();
            w.put(n, v);
            long z = 0;
            for (float x : v) if (x == 0f) z++;
            stats.add(new ModelPruner.TensorStat(n, model.param(n).shape()[0], model.param(n).shape()[1], z));
        }
        return new Result(new ModelPruner.Result(PrunedWeights.of(trained, w), List.copyOf(stats)), List.copyOf(rounds));
    }
}
