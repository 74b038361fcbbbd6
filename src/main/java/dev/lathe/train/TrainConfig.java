package dev.lathe.train;

import java.nio.file.Path;

/**
 * Training settings. Build with {@link #builder()}; every value has a default.
 *
 * @param seqLen              tokens per sequence (T)
 * @param batchSize           sequences per micro-batch (B)
 * @param gradAccumSteps      micro-batches per optimizer step
 * @param steps               optimizer steps to run in total
 * @param lr                  peak learning rate
 * @param minLr               final learning rate of the cosine decay
 * @param warmupSteps         linear warm-up steps
 * @param weightDecay         decoupled weight decay (not applied to norms and biases)
 * @param clipNorm            global gradient-norm clip (≤ 0: none)
 * @param seed                seeds the data order (and nothing else: the model has its own init seed)
 * @param evalEvery           validation every N steps (0: never during training)
 * @param evalMaxSequences    cap on validation sequences (0: the whole validation stream)
 * @param checkpointEvery     checkpoint every N steps (0: never)
 * @param checkpointPath      checkpoint file (null: none)
 * @param activationCheckpointing recompute layer activations in backward to save memory
 */
public record TrainConfig(int seqLen, int batchSize, int gradAccumSteps, long steps, double lr, double minLr, long warmupSteps,
                          double weightDecay, double beta1, double beta2, double adamEps, double clipNorm, long seed,
                          long evalEvery, int evalMaxSequences, long checkpointEvery, Path checkpointPath,
                          boolean activationCheckpointing) {

    public TrainConfig {
        if (seqLen <= 0 || batchSize <= 0 || gradAccumSteps <= 0 || steps < 0 || warmupSteps < 0 || evalEvery < 0
                || checkpointEvery < 0 || evalMaxSequences < 0) {
            throw new IllegalArgumentException("bad training settings: " + this);
        }
        if (checkpointEvery > 0 && checkpointPath == null) throw new IllegalArgumentException("checkpointEvery needs a checkpointPath");
    }

    public LrSchedule schedule() {
        return LrSchedule.warmupCosine(lr, minLr, Math.min(warmupSteps, steps), steps);
    }

    public static Builder builder() {
        return new Builder();
    }

    public Builder toBuilder() {
        Builder b = new Builder();
        b.seqLen = seqLen; b.batchSize = batchSize; b.gradAccumSteps = gradAccumSteps; b.steps = steps; b.lr = lr;
        b.minLr = minLr; b.warmupSteps = warmupSteps; b.weightDecay = weightDecay; b.beta1 = beta1; b.beta2 = beta2;
        b.adamEps = adamEps; b.clipNorm = clipNorm; b.seed = seed; b.evalEvery = evalEvery; b.evalMaxSequences = evalMaxSequences;
        b.checkpointEvery = checkpointEvery; b.checkpointPath = checkpointPath; b.activationCheckpointing = activationCheckpointing;
        return b;
    }

    public static final class Builder {
        private int seqLen = 256, batchSize = 8, gradAccumSteps = 1;
        private long steps = 1000;
        private double lr = 1e-3, minLr = 1e-4;
        private long warmupSteps = 100;
        private double weightDecay = 0.1, beta1 = 0.9, beta2 = 0.95, adamEps = 1e-8, clipNorm = 1.0;
        private long seed = 1;
        private long evalEvery = 0;
        private int evalMaxSequences = 0;
        private long checkpointEvery = 0;
        private Path checkpointPath;
        private boolean activationCheckpointing;

        public Builder seqLen(int v) { seqLen = v; return this; }
        public Builder batchSize(int v) { batchSize = v; return this; }
        public Builder gradAccumSteps(int v) { gradAccumSteps = v; return this; }
        public Builder steps(long v) { steps = v; return this; }
        public Builder lr(double v) { lr = v; return this; }
        public Builder minLr(double v) { minLr = v; return this; }
        public Builder warmupSteps(long v) { warmupSteps = v; return this; }
        public Builder weightDecay(double v) { weightDecay = v; return this; }
        public Builder betas(double b1, double b2) { beta1 = b1; beta2 = b2; return this; }
        public Builder adamEps(double v) { adamEps = v; return this; }
        public Builder clipNorm(double v) { clipNorm = v; return this; }
        public Builder seed(long v) { seed = v; return this; }
        public Builder evalEvery(long v) { evalEvery = v; return this; }
        public Builder evalMaxSequences(int v) { evalMaxSequences = v; return this; }
        public Builder checkpointEvery(long v) { checkpointEvery = v; return this; }
        public Builder checkpointPath(Path v) { checkpointPath = v; return this; }
        public Builder activationCheckpointing(boolean v) { activationCheckpointing = v; return this; }

        public TrainConfig build() {
            return new TrainConfig(seqLen, batchSize, gradAccumSteps, steps, lr, minLr, warmupSteps, weightDecay, beta1, beta2,
                    adamEps, clipNorm, seed, evalEvery, evalMaxSequences, checkpointEvery, checkpointPath, activationCheckpointing);
        }
    }
}
