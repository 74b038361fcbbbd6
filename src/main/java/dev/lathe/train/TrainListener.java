package dev.lathe.train;

import java.nio.file.Path;
import java.time.Duration;

/** Progress callbacks of {@link Trainer}; every method has an empty default. */
public interface TrainListener {

    /**
     * After each optimizer step.
     *
     * @param step            steps done (1 after the first)
     * @param loss            mean loss of the step's batch
     * @param tokensPerSecond training tokens per second over this run so far
     * @param eta             estimated time to reach the configured number of steps
     */
    record StepInfo(long step, long totalSteps, double loss, double lr, double gradNorm, double tokensPerSecond, Duration eta) {}

    /**
     * A validation pass.
     *
     * @param loss        mean loss per scored token
     * @param bitsPerByte total NLL / ln 2 / UTF-8 bytes of the validation text (NaN when unknown)
     */
    record ValidationInfo(long step, double loss, double bitsPerByte, long tokens) {}

    default void onStep(StepInfo info) {}

    default void onValidation(ValidationInfo info) {}

    default void onCheckpoint(long step, Path file) {}
}
