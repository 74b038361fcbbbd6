package dev.lathe.train;

/**
 * Softmax cross-entropy of the logits against integer targets; rows whose target equals the ignore index
 * (PyTorch's default is -100) do not count. Log-sum-exp uses max subtraction and double sums.
 */
public final class CrossEntropyLoss implements Loss {
    public static final int DEFAULT_IGNORE_INDEX = -100;

    private final int ignoreIndex;
    private final Parallel par;

    public CrossEntropyLoss() {
        this(DEFAULT_IGNORE_INDEX, Parallel.common());
    }

    public CrossEntropyLoss(int ignoreIndex, Parallel par) {
        this.ignoreIndex = ignoreIndex;
        this.par = par;
    }

    public int ignoreIndex() {
        return ignoreIndex;
    }

    @Override
    public int count(int[] targets, int rows) {
        int n = 0;
        for (int i = 0; i < rows; i++) if (targets[i] != ignoreIndex) n++;
        return n;
    }

    @Override
    public double sum(float[] logits, int rows, int vocab, int[] targets, float[] grad, float gradScale) {
        double[] rowLoss = new double[rows];
        final int chunk = 16;
        par.forEach((rows + chunk - 1) / chunk, task -> {
            int r1 = Math.min(rows, (task + 1) * chunk);
            for (int r = task * chunk; r < r1; r++) {
                int off = r * vocab;
                int tgt = targets[r];
                if (tgt == ignoreIndex) {
                    if (grad != null) java.util.Arrays.fill(grad, off, off + vocab, 0f);
                    continue;
                }
                if (tgt < 0 || tgt >= vocab) throw new IllegalArgumentException("target " + tgt + " outside vocabulary of " + vocab + " at row " + r);
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < vocab; j++) max = Math.max(max, logits[off + j]);
                double s = 0;
                for (int j = 0; j < vocab; j++) s += Math.exp(logits[off + j] - max);
                double lse = max + Math.log(s);
                rowLoss[r] = lse - logits[off + tgt];
                if (grad != null) {
                    for (int j = 0; j < vocab; j++) grad[off + j] = (float) (Math.exp(logits[off + j] - lse) * gradScale);
                    grad[off + tgt] -= gradScale;
                }
            }
        });
        double total = 0;
        for (double v : rowLoss) total += v;
        return total;
    }
}
