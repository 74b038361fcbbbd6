package dev.lathe.prune;

import dev.lathe.LatheException;

/**
 * Which weights a pruning pass may remove: an unstructured fraction ({@link #unstructured}) or an N:M pattern
 * ({@link #nm}): in every group of M consecutive weights of a row, at most N are kept.
 */
public record Pattern(double sparsity, int n, int m) {
    public Pattern {
        if (m == 0) {
            if (!(sparsity >= 0 && sparsity < 1)) throw new LatheException("sparsity must be in [0, 1), got " + sparsity);
        } else {
            if (n < 1 || m < 2 || n >= m) throw new LatheException("N:M pattern needs 1 <= N < M, got " + n + ":" + m);
            if (m > 4096) throw new LatheException("N:M pattern needs M up to 4096, got " + n + ":" + m);
            sparsity = 1.0 - (double) n / m;
        }
    }

    public static Pattern unstructured(double sparsity) {
        return new Pattern(sparsity, 0, 0);
    }

    public static Pattern nm(int n, int m) {
        return new Pattern(0, n, m);
    }

    /** Parses "2:4". */
    public static Pattern parseNm(String s) {
        String[] p = s.trim().split(":");
        if (p.length != 2) throw new LatheException("pattern must look like N:M (e.g. 2:4), got '" + s + "'");
        try {
            return nm(Integer.parseInt(p[0].trim()), Integer.parseInt(p[1].trim()));
        } catch (NumberFormatException e) {
            throw new LatheException("pattern must look like N:M (e.g. 2:4), got '" + s + "'");
        }
    }

    public boolean isNm() {
        return m != 0;
    }

    @Override
    public String toString() {
        return isNm() ? n + ":" + m : "unstructured " + sparsity;
    }
}
