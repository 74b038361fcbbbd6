package dev.lathe.train;

/**
 * Cuts a token stream into training sequences of length T (sequence i = tokens [iT, iT+T) predicting
 * [iT+1, iT+T+1)) and hands them out in a shuffled order, reshuffled every epoch. The position (epoch,
 * index, and the generator state at the start of the epoch) can be saved and restored exactly.
 */
public final class SequenceSampler {
    private final int[] tokens;
    private final int seqLen;
    private final int count;
    private final Rng rng;
    private long epochStartState;
    private long epoch;
    private int index;
    private int[] order;

    public SequenceSampler(int[] tokens, int seqLen, long seed) {
        if (seqLen <= 0) throw new IllegalArgumentException("sequence length " + seqLen);
        this.tokens = tokens;
        this.seqLen = seqLen;
        this.count = (int) Math.max(0, ((long) tokens.length - 1) / seqLen);
        if (count == 0) throw new IllegalArgumentException("only " + tokens.length + " tokens: not enough for one sequence of " + seqLen + " + 1");
        this.rng = Rng.of(seed, 0xDA7AL);
        restore(rng.state(), 0, 0);
    }

    /** Number of sequences per epoch. */
    public int sequences() {
        return count;
    }

    public long epoch() {
        return epoch;
    }

    public int index() {
        return index;
    }

    /** Generator state at the start of the current epoch. */
    public long epochStartState() {
        return epochStartState;
    }

    /** Restores a position saved from {@link #epochStartState()}, {@link #epoch()} and {@link #index()}. */
    public void restore(long epochStartState, long epoch, int index) {
        if (index < 0 || index > count) throw new IllegalArgumentException("data index " + index + " outside 0.." + count);
        this.epochStartState = epochStartState;
        this.epoch = epoch;
        this.index = index;
        rng.setState(epochStartState);
        order = new int[count];
        for (int i = 0; i < count; i++) order[i] = i;
        rng.shuffle(order);
    }

    /** Writes the next sequence's inputs and targets at offset {@code off}. */
    public void next(int[] inputs, int[] targets, int off) {
        if (index == count) restore(rng.state(), epoch + 1, 0);
        int start = order[index++] * seqLen;
        System.arraycopy(tokens, start, inputs, off, seqLen);
        System.arraycopy(tokens, start + 1, targets, off, seqLen);
    }
}
