package dev.lathe.train;

/**
 * A training loss over a block of logits {@code [rows, vocab]} (row-major) with one target per row.
 * Losses are summed over the rows that count; the trainer divides by the number of counted rows of the
 * whole (accumulated) batch through {@code gradScale}, so micro-batching does not change the result.
 */
public interface Loss {
    /**
     * Returns Σ over counted rows of the per-row loss (in double). If {@code grad} is not null it receives
     * {@code gradScale · ∂(sum)/∂logits} for every row (zero for rows that do not count); {@code grad} may be
     * the {@code logits} array itself (overwritten in place).
     */
    double sum(float[] logits, int rows, int vocab, int[] targets, float[] grad, float gradScale);

    /**
     * Called by {@link TrainModel} with the batch's inputs and targets right before {@link #sum} on its
     * logits (row r of the logits is position r % seqLen of sequence r / seqLen). A loss that needs more than
     * the targets — e.g. distillation, which runs a teacher on the same inputs — prepares it here.
     */
    default void prepare(int[] inputs, int[] targets, int batch, int seqLen) {}

    /** How many of the first {@code rows} targets count towards the loss. */
    int count(int[] targets, int rows);

    /** Mean loss over counted rows (no gradient); NaN if no row counts. */
    default double mean(float[] logits, int rows, int vocab, int[] targets) {
        int n = count(targets, rows);
        return n == 0 ? Double.NaN : sum(logits, rows, vocab, targets, null, 0f) / n;
    }
}
