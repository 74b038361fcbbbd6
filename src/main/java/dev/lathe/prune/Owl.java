package dev.lathe.prune;

import dev.lathe.LatheException;

/**
 * OWL, "Outlier Weighed Layerwise sparsity" (Yin et al. 2023): layers with more outliers keep more weights.
 * A decoder block's outlier ratio is the share of its Wanda scores |W_ij|·‖x_j‖ (over all its projections
 * together) above {@code m} times their mean. The ratios are normalized to [−1, 1] (min to max), and block l
 * gets sparsity {@code target − λ·(n_l − mean n)}: within [target − λ, target + λ] up to the centering,
 * mean equal to the target (as the authors' code does: their range is 2λ). Values are kept in [0, {@link #MAX}];
 * when that clips, the others are shifted so the mean stays at the target.
 */
public final class Owl {
    private Owl() {}

    /** The highest sparsity OWL assigns to one layer. */
    public static final double MAX = 0.99;

    /** Accumulates one block's outlier ratio over its projections (two passes: {@link #addMean} then {@link #addCount}). */
    public static final class Counter {
        private final double m;
        private double sum;
        private long n, outliers;
        private boolean counting;

        public Counter(double m) {
            if (!(m > 0) || Double.isInfinite(m)) throw new LatheException("OWL's outlier threshold M must be positive, got " + m);
            this.m = m;
        }

        /** First pass: adds the Wanda scores of one projection to the mean. */
        public void addMean(float[] w, int rows, int cols, float[] colNorms) {
            if (counting) throw new IllegalStateException("mean pass is over");
            for (int r = 0; r < rows; r++) {
                for (int j = 0, o = r * cols; j < cols; j++) sum += Math.abs(w[o + j]) * (double) colNorms[j];
            }
            n += (long) rows * cols;
        }

        /** Second pass: counts the scores above M × mean. */
        public void addCount(float[] w, int rows, int cols, float[] colNorms) {
            counting = true;
            double t = m * sum / n;
            for (int r = 0; r < rows; r++) {
                for (int j = 0, o = r * cols; j < cols; j++) if (Math.abs(w[o + j]) * (double) colNorms[j] > t) outliers++;
            }
        }

        public double ratio() {
            return n == 0 ? 0 : (double) outliers / n;
        }
    }

    /** Per-layer sparsities for the outlier {@code ratios}, averaging {@code target}. */
    public static double[] allocate(double[] ratios, double target, double lambda) {
        if (!(target >= 0 && target < 1)) throw new LatheException("sparsity must be in [0, 1), got " + target);
        if (!(lambda >= 0 && lambda < 1)) throw new LatheException("OWL's lambda must be in [0, 1), got " + lambda);
        int l = ratios.length;
        if (l == 0) return new double[0];
        double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
        for (double r : ratios) {
            if (!Double.isFinite(r)) throw new LatheException("an outlier ratio is " + r);
            min = Math.min(min, r);
            max = Math.max(max, r);
        }
        double[] s = new double[l];
        if (max > min) {
            double mean = 0;
            double[] n = new double[l];
            for (int i = 0; i < l; i++) {
                n[i] = 2 * (ratios[i] - min) / (max - min) - 1;
                mean += n[i];
            }
            mean /= l;
            for (int i = 0; i < l; i++) s[i] = target - lambda * (n[i] - mean);
        } else {
            java.util.Arrays.fill(s, target);
        }
        // clip to [0, MAX] and shift the free layers so the mean stays at the target
        boolean[] fixed = new boolean[l];
        for (int it = 0; it < 4 * l + 4; it++) {
            for (int i = 0; i < l; i++) {
                if (s[i] < 0 || s[i] > MAX) {
                    s[i] = Math.max(0, Math.min(MAX, s[i]));
                    fixed[i] = true;
                }
            }
            double excess = 0;
            int free = 0;
            for (int i = 0; i < l; i++) {
                excess += s[i] - target;
                if (!fixed[i]) free++;
            }
            if (free == 0 || Math.abs(excess) < 1e-12) break;
            for (int i = 0; i < l; i++) if (!fixed[i]) s[i] -= excess / free;
        }
        return s;
    }
}
