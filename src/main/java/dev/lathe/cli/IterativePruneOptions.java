package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.model.WeightSource;
import dev.lathe.prune.IterativePruner;
import dev.lathe.prune.ModelPruner;
import dev.lathe.prune.Pattern;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;
import dev.lathe.train.TextCorpus;
import dev.lathe.train.TokenData;
import dev.lathe.train.TrainConfig;
import dev.lathe.train.TrainListener;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The {@code prune} command's options for gradual pruning with recovery fine-tuning ({@link IterativePruner}),
 * kept in a picocli mixin so the command itself only checks and calls them. Inactive unless
 * {@code --iterative} or {@code --recover-steps} is given.
 */
final class IterativePruneOptions {
    @Option(names = "--iterative", paramLabel = "ROUNDS",
            description = "prune in ROUNDS rounds of rising sparsity (see --schedule), fine-tuning with the pruned weights held at zero after each (needs --data)")
    Integer rounds;

    @Option(names = "--schedule", defaultValue = "cubic",
            description = "sparsity per round: cubic (Zhu & Gupta 2017: s(1-(1-r/R)^3)) or linear (s r/R) (default ${DEFAULT-VALUE})")
    String schedule;

    @Option(names = "--recover-steps",
            description = "fine-tuning steps after each round (default 100); alone, without --iterative: one-shot pruning then recovery")
    Long recoverSteps;

    @Option(names = "--data", arity = "1..*", description = "training text for the recovery (files or folders; 1%% of each held out for validation)")
    List<Path> data;

    @Option(names = "--recover-lr", defaultValue = "1e-4", description = "peak learning rate of each recovery (warm-up 10%%, cosine to a tenth; default ${DEFAULT-VALUE})")
    double lr;

    @Option(names = "--recover-batch", defaultValue = "8", description = "sequences per recovery step (default ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--recover-seq-len", description = "tokens per sequence (default min(256, the model's context))")
    Integer seqLen;

    @Option(names = "--recover-seed", defaultValue = "1", description = "data order seed of round 1 (round r uses seed + r - 1; default ${DEFAULT-VALUE})")
    long seed;

    boolean active() {
        return rounds != null || recoverSteps != null;
    }

    /** Checks the options against the pruning pattern and method before anything is read. */
    void check(Pattern p, ModelPruner.Method m) {
        if (!active()) {
            if (data != null) throw new LatheException("--data is for recovery fine-tuning: give --iterative ROUNDS or --recover-steps N");
            return;
        }
        int r = rounds == null ? 1 : rounds;
        if (r < 1) throw new LatheException("--iterative needs at least 1 round, got " + r);
        if (recoverSteps != null && recoverSteps < 0) throw new LatheException("--recover-steps must not be negative, got " + recoverSteps);
        if (r > 1 && p.isNm()) throw new LatheException("an N:M pattern is reached in one step; iterate on an unstructured --sparsity, or use --recover-steps alone");
        if (r > 1 && m != ModelPruner.Method.MAGNITUDE) throw new LatheException("--iterative re-ranks the fine-tuned weights each round and needs --method magnitude");
        IterativePruner.Schedule.parse(schedule);
        if (steps() > 0) {
            if (data == null || data.isEmpty()) throw new LatheException("recovery fine-tuning needs --data (training text)");
            for (Path d : data) if (!Files.exists(d)) throw new LatheException(d, "no such file or folder");
        }
        if (!(lr > 0) || Double.isInfinite(lr)) throw new LatheException("--recover-lr must be a positive number, got " + lr);
        if (batch < 1) throw new LatheException("--recover-batch must be at least 1, got " + batch);
        if (seqLen != null && seqLen < 2) throw new LatheException("--recover-seq-len must be at least 2, got " + seqLen);
    }

    private long steps() {
        return recoverSteps == null ? 100 : recoverSteps;
    }

    /**
     * Prunes {@code src} in rounds with recovery and returns the result for the one-shot writers; adds the rounds
     * to {@code summary}.
     */
    ModelPruner.Result run(WeightSource src, ModelPruner.Options opts, boolean quiet, Map<String, Object> summary) {
        int r = rounds == null ? 1 : rounds;
        long steps = steps();
        int ctx = src.config().contextLength();
        int t = seqLen != null ? seqLen : Math.min(256, ctx);
        if (ctx > 0 && t > ctx) throw new LatheException("--recover-seq-len " + t + " exceeds the model's context of " + ctx);
        int[] train = null, val = null;
        long valBytes = 0;
        if (steps > 0) {
            Tokenizer tok = Tokenizers.load(src).orElseThrow(() -> new LatheException(src.path(), "the model has no tokenizer to encode --data with"));
            if (tok.vocabSize() > src.config().vocabSize()) {
                throw new LatheException(src.path(), "the tokenizer has " + tok.vocabSize() + " tokens, the model's vocabulary only " + src.config().vocabSize());
            }
            TokenData td = TrainCommand.tokenData(TextCorpus.of(data, false), tok, 0.01, null);
            if (td.train().length < t + 1) throw new LatheException(data.get(0), "the text is too small: " + td.train().length + " tokens, one sequence needs " + (t + 1));
            train = td.train();
            val = td.validation().length >= 2 ? td.validation() : null;
            valBytes = td.validationBytes();
        }
        TrainConfig tc = TrainConfig.builder().seqLen(t).batchSize(batch).steps(steps).lr(lr).minLr(lr / 10)
                .warmupSteps(Math.min(100, steps / 10)).weightDecay(0).clipNorm(1.0).seed(seed).build();
        IterativePruner.Schedule sched = IterativePruner.Schedule.parse(schedule);
        IterativePruner.Options io = new IterativePruner.Options(opts, r, sched, tc, train, val, valBytes);
        long tokensPerStep = (long) t * batch;
        List<Map<String, Object>> rows = new ArrayList<>();
        IterativePruner.Result res;
        try (CliProgress bar = new CliProgress("recover")) {
            long t0 = System.nanoTime();
            res = IterativePruner.run(src, io, new IterativePruner.Listener() {
                @Override
                public void onPruned(int round, int n, double target, double sparsity) {
                    if (!quiet) System.err.printf(Locale.ROOT, "round %d/%d: pruned to %.4f (%.2f%% zeros)%n", round, n, target, 100 * sparsity);
                }

                @Override
                public void onStep(int round, int n, TrainListener.StepInfo s) {
                    long done = (round - 1) * steps + s.step(), total = n * steps;
                    double secs = (System.nanoTime() - t0) / 1e9;
                    bar.update(done, total, String.format(Locale.ROOT, "round %d/%d  loss %.4f  lr %.2e  %.0f tok/s", round, n, s.loss(), s.lr(),
                            done * tokensPerStep / Math.max(secs, 1e-9)));
                }

                @Override
                public void onRound(IterativePruner.Round rd) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("round", rd.round());
                    m.put("target_sparsity", rd.targetSparsity());
                    m.put("sparsity", rd.sparsity());
                    m.put("recovery_steps", rd.recoverySteps());
                    m.put("train_loss", rd.lastTrainLoss());
                    m.put("validation_loss_pruned", rd.prunedValLoss());
                    m.put("validation_bpb_pruned", rd.prunedValBpb());
                    m.put("validation_loss_recovered", rd.recoveredValLoss());
                    m.put("validation_bpb_recovered", rd.recoveredValBpb());
                    rows.add(m);
                    if (!quiet && !Double.isNaN(rd.prunedValLoss())) {
                        System.err.printf(Locale.ROOT, "round %d: validation loss %.4f (bpb %.4f) after pruning, %.4f (bpb %.4f) after %d steps%n",
                                rd.round(), rd.prunedValLoss(), rd.prunedValBpb(), rd.recoveredValLoss(), rd.recoveredValBpb(), rd.recoverySteps());
                    }
                }
            }, dev.lathe.io.Progress.NONE);
        }
        summary.put("schedule", sched.name().toLowerCase(Locale.ROOT));
        summary.put("recovery_steps_per_round", steps);
        summary.put("recovery_tokens_per_step", tokensPerStep);
        summary.put("rounds", rows);
        return res.result();
    }
}
