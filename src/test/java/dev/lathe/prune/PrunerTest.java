package dev.lathe.prune;

import dev.lathe.LatheException;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PrunerTest {
    static float[] random(int n, long seed) {
        Random r = new Random(seed);
        float[] w = new float[n];
        for (int i = 0; i < n; i++) w[i] = (float) r.nextGaussian();
        return w;
    }

    @Test
    void rowScopeRemovesExactlyTheSmallestOfEveryRow() {
        int rows = 9, cols = 50;
        float[] w = random(rows * cols, 1), orig = w.clone();
        long z = Pruner.prune(w, Pruner.magnitudeScores(w), rows, cols, Pattern.unstructured(0.7), Pruner.Scope.ROW);
        assertEquals(rows * 35L, z);
        for (int r = 0; r < rows; r++) {
            int zeros = 0;
            float maxPruned = 0, minKept = Float.MAX_VALUE;
            for (int c = 0; c < cols; c++) {
                float v = w[r * cols + c], o = orig[r * cols + c];
                if (v == 0) {
                    zeros++;
                    maxPruned = Math.max(maxPruned, Math.abs(o));
                } else {
                    assertEquals(o, v);
                    minKept = Math.min(minKept, Math.abs(o));
                }
            }
            assertEquals(35, zeros);
            assertTrue(maxPruned <= minKept);
        }
    }

    @Test
    void layerAndGlobalScopesHitTheCountExactly() {
        float[] a = random(300, 2), b = random(500, 3);
        float[] a1 = a.clone();
        assertEquals(210, Pruner.prune(a1, Pruner.magnitudeScores(a1), 10, 30, Pattern.unstructured(0.7), Pruner.Scope.LAYER));
        assertEquals(0.7, Pruner.sparsity(a1), 1e-12);
        for (int i = 0; i < b.length; i++) b[i] *= 3; // b's weights are larger: global pruning takes more from a
        float[] a2 = a.clone(), b2 = b.clone();
        long z = Pruner.pruneGlobal(List.of(a2, b2), List.of(Pruner.magnitudeScores(a2), Pruner.magnitudeScores(b2)), 0.5);
        assertEquals(400, z);
        assertTrue(Pruner.sparsity(a2) > Pruner.sparsity(b2));
        // ties (all equal) are broken deterministically and the count still holds
        float[] t = new float[100];
        java.util.Arrays.fill(t, 1f);
        assertEquals(30, Pruner.prune(t, Pruner.magnitudeScores(t), 1, 100, Pattern.unstructured(0.3), Pruner.Scope.LAYER));
        assertEquals(0.3, Pruner.sparsity(t), 1e-12);
    }

    @Test
    void nmKeepsTheLargestNOfEveryGroup() {
        float[] w = {1, -4, 3, 2, /* */ 0.5f, 0.1f, -0.2f, 9};
        Pruner.prune(w, Pruner.magnitudeScores(w), 1, 8, Pattern.nm(2, 4), Pruner.Scope.ROW);
        assertArrayEquals(new float[]{0, -4, 3, 0, 0.5f, 0, 0, 9}, w);
        float[] x = random(16 * 64, 4);
        Pruner.prune(x, Pruner.magnitudeScores(x), 16, 64, Pattern.nm(4, 8), Pruner.Scope.ROW);
        assertTrue(Pruner.satisfiesNm(x, 64, 4, 8));
        assertFalse(Pruner.satisfiesNm(x, 64, 3, 8));
        assertEquals(0.5, Pruner.sparsity(x), 1e-12);
        assertThrows(LatheException.class, () -> Pruner.prune(new float[12], new float[12], 1, 12, Pattern.nm(2, 8), Pruner.Scope.ROW));
    }

    @Test
    void wandaWeighsColumnsByTheirInputNorm() {
        // column 0 has small weights but a huge input norm: Wanda keeps it, magnitude drops it
        float[] w = {0.1f, 1f, 0.9f, 0.8f, /* */ 0.2f, 0.5f, 1f, 0.7f};
        float[] norms = {100f, 1f, 1f, 1f};
        float[] wm = w.clone(), ww = w.clone();
        Pruner.prune(wm, Pruner.magnitudeScores(wm), 2, 4, Pattern.unstructured(0.5), Pruner.Scope.ROW);
        Pruner.prune(ww, Pruner.wandaScores(ww, 2, 4, norms), 2, 4, Pattern.unstructured(0.5), Pruner.Scope.ROW);
        assertArrayEquals(new float[]{0, 1f, 0.9f, 0, 0, 0, 1f, 0.7f}, wm);
        assertArrayEquals(new float[]{0.1f, 1f, 0, 0, 0.2f, 0, 1f, 0}, ww);
        assertThrows(LatheException.class, () -> Pruner.wandaScores(w, 2, 4, new float[]{1, 1, Float.NaN, 1}));
        assertThrows(LatheException.class, () -> Pruner.wandaScores(w, 2, 4, new float[3]));
    }

    @Test
    void patternsAreValidated() {
        for (double s : new double[]{-0.01, 1.0, 1.5, Double.NaN}) assertThrows(LatheException.class, () -> Pattern.unstructured(s));
        assertThrows(LatheException.class, () -> Pattern.nm(4, 4));
        assertThrows(LatheException.class, () -> Pattern.nm(0, 4));
        assertThrows(LatheException.class, () -> Pattern.parseNm("2-4"));
        assertEquals(0.5, Pattern.parseNm(" 2:4").sparsity());
        assertEquals(0.75, Pattern.parseNm("1:4").sparsity());
    }
}
