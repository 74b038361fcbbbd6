package dev.lathe.prune;

import dev.lathe.LatheException;

import java.util.Arrays;
import java.util.List;

/**
 * One-shot pruning without calibration: scores every weight, then zeroes the lowest-scored ones.
 * Scores are |W| (magnitude) or Wanda's |W_ij|·‖x_j‖₂ where {@code colNorms[j]} is the L2 norm of input
 * feature j over calibration tokens (sqrt of the per-column sum, or mean, of squares — a constant factor
 * does not change the ranking). Ties are broken by column index (lower index pruned first), so results are
 * deterministic.
 */
public final class Pruner {
    private Pruner() {}

    /** Where the unstructured sparsity is counted. */
    public enum Scope {
        /** each output row loses the same fraction (Wanda's comparison group) */
        ROW,
        /** the fraction is reached over the whole matrix */
        LAYER
    }

    /**
     * Wanda's column norms ‖x_j‖₂ from per-column sums of squared inputs (what a calibration pass such as
     * {@code dev.lathe.compress.InputStats.sumSq} accumulates).
     */
    public static float[] columnNorms(double[] sumSquares) {
        float[] n = new float[sumSquares.length];
        for (int j = 0; j < n.length; j++) {
            if (!(sumSquares[j] >= 0) || Double.isInfinite(sumSquares[j])) throw new LatheException("sum of squares of column " + j + " is " + sumSquares[j]);
            n[j] = (float) Math.sqrt(sumSquares[j]);
        }
        return n;
    }

    /** Magnitude scores |w|. */
    public static float[] magnitudeScores(float[] w) {
        float[] s = new float[w.length];
        for (int i = 0; i < w.length; i++) s[i] = Math.abs(w[i]);
        return s;
    }

    /** Wanda scores |w_ij|·colNorms[j]; norms must be finite and non-negative. */
    public static float[] wandaScores(float[] w, int rows, int cols, float[] colNorms) {
        if (colNorms.length != cols) throw new LatheException("Wanda needs " + cols + " column norms, got " + colNorms.length);
        for (int j = 0; j < cols; j++) {
            if (!(colNorms[j] >= 0) || Float.isInfinite(colNorms[j])) throw new LatheException("column norm " + j + " is " + colNorms[j]);
        }
        checkShape(w, rows, cols);
        float[] s = new float[w.length];
        for (int r = 0; r < rows; r++) {
            for (int j = 0, o = r * cols; j < cols; j++) s[o + j] = Math.abs(w[o + j]) * colNorms[j];
        }
        return s;
    }

    /** Zeroes weights of {@code w} ([rows, cols]) with the lowest scores; returns the number zeroed by this call. */
    public static long prune(float[] w, float[] scores, int rows, int cols, Pattern p, Scope scope) {
        checkShape(w, rows, cols);
        if (scores.length != w.length) throw new IllegalArgumentException("scores and weights differ in length");
        if (p.isNm()) return pruneNm(w, scores, rows, cols, p.n(), p.m());
        if (scope == Scope.ROW) {
            int drop = (int) Math.floor(p.sparsity() * cols);
            long z = 0;
            Integer[] idx = new Integer[cols];
            for (int r = 0; r < rows; r++) z += pruneLowest(w, scores, r * cols, cols, drop, idx);
            return z;
        }
        long drop = (long) Math.floor(p.sparsity() * w.length);
        float t = threshold(List.of(scores), drop);
        return pruneBelow(w, scores, t, drop);
    }

    /**
     * Global magnitude pruning over several matrices at once: one threshold for all of them, so layers lose
     * different fractions. Returns the number of weights zeroed.
     */
    public static long pruneGlobal(List<float[]> weights, List<float[]> scores, double sparsity) {
        Pattern.unstructured(sparsity);
        long total = 0;
        for (float[] s : scores) total += s.length;
        long drop = (long) Math.floor(sparsity * total);
        float t = threshold(scores, drop);
        // weights strictly below t go; ties at t go in list order until the count is reached
        long below = 0;
        for (float[] s : scores) for (float v : s) if (v < t) below++;
        long tiesLeft = drop - below, z = 0;
        for (int k = 0; k < weights.size(); k++) {
            float[] w = weights.get(k), s = scores.get(k);
            for (int i = 0; i < w.length; i++) {
                if (s[i] < t || (s[i] == t && tiesLeft > 0 && drop > 0)) {
                    if (s[i] == t) tiesLeft--;
                    w[i] = 0;
                    z++;
                }
            }
        }
        return z;
    }

    private static long pruneBelow(float[] w, float[] s, float t, long drop) {
        long below = 0;
        for (float v : s) if (v < t) below++;
        long tiesLeft = drop - below, z = 0;
        for (int i = 0; i < w.length; i++) {
            if (s[i] < t || (s[i] == t && tiesLeft > 0)) {
                if (s[i] == t) tiesLeft--;
                w[i] = 0;
                z++;
            }
        }
        return z;
    }

    /** The drop-th smallest score (1-based) over all arrays; +inf-free scores assumed. */
    private static float threshold(List<float[]> scores, long drop) {
        if (drop <= 0) return Float.NEGATIVE_INFINITY;
        long total = 0;
        for (float[] s : scores) total += s.length;
        if (total > Integer.MAX_VALUE - 8) throw new LatheException("global pruning over more than 2^31 weights is not supported");
        float[] all = new float[(int) total];
        int o = 0;
        for (float[] s : scores) {
            System.arraycopy(s, 0, all, o, s.length);
            o += s.length;
        }
        for (float v : all) if (Float.isNaN(v)) throw new LatheException("a pruning score is NaN (NaN weights?)");
        Arrays.sort(all);
        return all[(int) (drop - 1)];
    }

    private static long pruneLowest(float[] w, float[] s, int off, int len, int drop, Integer[] idx) {
        if (drop <= 0) return 0;
        for (int j = 0; j < len; j++) {
            if (Float.isNaN(s[off + j])) throw new LatheException("a pruning score is NaN (NaN weights?)");
            idx[j] = j;
        }
        Arrays.sort(idx, 0, len, (a, b) -> {
            int c = Float.compare(s[off + a], s[off + b]);
            return c != 0 ? c : Integer.compare(a, b);
        });
        for (int k = 0; k < drop; k++) w[off + idx[k]] = 0;
        return drop;
    }

    private static long pruneNm(float[] w, float[] s, int rows, int cols, int n, int m) {
        if (cols % m != 0) throw new LatheException("N:M pattern " + n + ":" + m + " does not divide the row length " + cols);
        Integer[] idx = new Integer[m];
        long z = 0;
        for (int g = 0; g < w.length; g += m) z += pruneLowest(w, s, g, m, m - n, idx);
        return z;
    }

    /** Fraction of exact zeros. */
    public static double sparsity(float[] w) {
        long z = 0;
        for (float v : w) if (v == 0f) z++;
        return w.length == 0 ? 0 : (double) z / w.length;
    }

    /** True when every group of M consecutive row entries holds at most N non-zeros. */
    public static boolean satisfiesNm(float[] w, int cols, int n, int m) {
        if (cols % m != 0) return false;
        for (int g = 0; g < w.length; g += m) {
            int nz = 0;
            for (int j = 0; j < m; j++) if (w[g + j] != 0f) nz++;
            if (nz > n) return false;
        }
        return true;
    }

    private static void checkShape(float[] w, int rows, int cols) {
        if (rows < 0 || cols < 0 || (long) rows * cols != w.length) {
            throw new IllegalArgumentException("weights hold " + w.length + " values, not " + rows + "x" + cols);
        }
    }
}
