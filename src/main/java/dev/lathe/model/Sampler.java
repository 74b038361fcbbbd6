package dev.lathe.model;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from logits: greedy (argmax, lowest id on ties), or temperature sampling with
 * optional nucleus (top-p) truncation from a seeded {@link SplittableRandom}, so a seed fixes the output.
 * Not thread-safe (it keeps scratch buffers and the random state).
 */
public final class Sampler {
    private final float temperature;
    private final float topP;
    private final long seed;
    private SplittableRandom random;
    private double[] probs = new double[0];
    private int[] order = new int[0];

    /**
     * @param temperature &lt;= 0 means greedy
     * @param topP        in (0, 1]; 1 disables nucleus truncation
     */
    public Sampler(float temperature, float topP, long seed) {
        if (!Float.isFinite(temperature)) throw new IllegalArgumentException("temperature must be finite, got " + temperature);
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("top-p must be in (0, 1], got " + topP);
        this.temperature = temperature;
        this.topP = topP;
        this.seed = seed;
        this.random = new SplittableRandom(seed);
    }

    public static Sampler greedy() {
        return new Sampler(0f, 1f, 0L);
    }

    public boolean isGreedy() {
        return temperature <= 0;
    }

    public float temperature() {
        return temperature;
    }

    public float topP() {
        return topP;
    }

    /** Restarts the random sequence from the seed. */
    public void reset() {
        random = new SplittableRandom(seed);
    }

    public int sample(float[] logits) {
        return sample(logits, 0, logits.length);
    }

    /** Samples an index in {@code [0, n)} from {@code logits[off .. off+n)}. */
    public int sample(float[] logits, int off, int n) {
        if (n < 1) throw new IllegalArgumentException("no logits");
        if (isGreedy()) return argmax(logits, off, n);
        if (probs.length < n) {
            probs = new double[n];
            order = new int[n];
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, logits[off + i]);
        if (max == Float.NEGATIVE_INFINITY || Float.isNaN(max)) return argmax(logits, off, n);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            double p = Math.exp((logits[off + i] - max) / (double) temperature);
            probs[i] = p;
            sum += p;
        }
        double r = random.nextDouble();
        if (topP >= 1f) {
            double target = r * sum, c = 0;
            for (int i = 0; i < n; i++) {
                c += probs[i];
                if (c > target) return i;
            }
            return lastNonZero(n);
        }
        // nucleus: only tokens with p >= (1 - topP) / (n - 1) can be inside it (as llama2.c's run.c argues)
        double cutoff = (1 - topP) / Math.max(1, n - 1) * sum;
        int m = 0;
        for (int i = 0; i < n; i++) if (probs[i] >= cutoff) order[m++] = i;
        Integer[] boxed = new Integer[m];
        for (int i = 0; i < m; i++) boxed[i] = order[i];
        Arrays.sort(boxed, (a, b) -> {
            int cmp = Double.compare(probs[b], probs[a]);
            return cmp != 0 ? cmp : Integer.compare(a, b);
        });
        double limit = topP * sum, c = 0;
        int last = m - 1;
        for (int i = 0; i < m; i++) {
            c += probs[boxed[i]];
            if (c >= limit) {
                last = i;
                break;
            }
        }
        double total = 0;
        for (int i = 0; i <= last; i++) total += probs[boxed[i]];
        double target = r * total;
        c = 0;
        for (int i = 0; i <= last; i++) {
            c += probs[boxed[i]];
            if (c > target) return boxed[i];
        }
        return boxed[last];
    }

    private int lastNonZero(int n) {
        for (int i = n - 1; i >= 0; i--) if (probs[i] > 0) return i;
        return 0;
    }

    /** Index of the largest value (the first one on ties). */
    public static int argmax(float[] a, int off, int n) {
        int best = 0;
        float bv = a[off];
        for (int i = 1; i < n; i++) {
            if (a[off + i] > bv) {
                bv = a[off + i];
                best = i;
            }
        }
        return best;
    }
}
