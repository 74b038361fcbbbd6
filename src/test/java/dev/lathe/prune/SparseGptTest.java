package dev.lathe.prune;

import dev.lathe.compress.Gptq;
import dev.lathe.compress.Grid;
import dev.lathe.compress.QuantizedWeight;
import dev.lathe.compress.WeightFormat;
import dev.lathe.model.Parallel;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

class SparseGptTest {
    static final Parallel POOL = Parallel.common();

    /** A layer [rows, cols] of Gaussian weights and the Hessian XᵀX of n correlated inputs with uneven column scales. */
    record Layer(float[] w, int rows, int cols, double[] h) {}

    static Layer layer(int rows, int cols, int n, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) gauss(rnd);
        int k = cols;
        double[] a = new double[k * cols];
        for (int i = 0; i < a.length; i++) a[i] = gauss(rnd) / Math.sqrt(k) + (i % (cols + 1) == 0 ? 1 : 0);
        double[] scale = new double[cols];
        for (int j = 0; j < cols; j++) scale[j] = Math.exp(0.8 * gauss(rnd));
        double[] x = new double[n * cols];
        double[] g = new double[k];
        for (int t = 0; t < n; t++) {
            for (int i = 0; i < k; i++) g[i] = gauss(rnd);
            for (int j = 0; j < cols; j++) {
                double s = 0;
                for (int i = 0; i < k; i++) s += g[i] * a[i * cols + j];
                x[t * cols + j] = s * scale[j];
            }
        }
        double[] h = new double[cols * cols];
        for (int t = 0; t < n; t++) {
            for (int i = 0; i < cols; i++) {
                double xi = x[t * cols + i];
                for (int j = 0; j < cols; j++) h[i * cols + j] += xi * x[t * cols + j];
            }
        }
        return new Layer(w, rows, cols, h);
    }

    static double gauss(SplittableRandom r) {
        double u = r.nextDouble(), v = r.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v);
    }

    static float[] magnitude(Layer l, Pattern p) {
        float[] w = l.w().clone();
        Pruner.prune(w, Pruner.magnitudeScores(w), l.rows(), l.cols(), p, Pruner.Scope.LAYER);
        return w;
    }

    static float[] wanda(Layer l, Pattern p) {
        float[] w = l.w().clone();
        double[] ss = new double[l.cols()];
        for (int j = 0; j < l.cols(); j++) ss[j] = l.h()[j * l.cols() + j];
        Pruner.prune(w, Pruner.wandaScores(w, l.rows(), l.cols(), Pruner.columnNorms(ss)), l.rows(), l.cols(), p, Pruner.Scope.ROW);
        return w;
    }

    static double err(Layer l, float[] q) {
        return Gptq.outputError(l.w(), q, l.rows(), l.cols(), l.h());
    }

    static long zeros(float[] w) {
        long z = 0;
        for (float v : w) if (v == 0f) z++;
        return z;
    }

    @Test
    void lowerOutputErrorThanMagnitudeAndWandaUnstructuredAndTwoFour() {
        Layer l = layer(48, 256, 512, 1);
        for (Pattern p : new Pattern[]{Pattern.unstructured(0.5), Pattern.unstructured(0.7), Pattern.nm(2, 4), Pattern.nm(4, 8)}) {
            SparseGpt.Result r = SparseGpt.prune("w", l.w(), l.rows(), l.cols(), l.h(), p, SparseGpt.Options.DEFAULT, null, POOL);
            double eS = err(l, r.weights()), eM = err(l, magnitude(l, p)), eW = err(l, wanda(l, p));
            System.out.printf(java.util.Locale.ROOT, "%s: output error magnitude %.1f, wanda %.1f, sparsegpt %.1f%n", p, eM, eW, eS);
            assertThat(eS).as(p.toString()).isLessThan(eW).isLessThan(eM);
            if (p.isNm()) {
                assertThat(Pruner.satisfiesNm(r.weights(), l.cols(), p.n(), p.m())).isTrue();
                assertThat(r.pruned()).isEqualTo((long) l.rows() * l.cols() * (p.m() - p.n()) / p.m());
            } else {
                assertThat(r.pruned()).isEqualTo((long) Math.floor(p.sparsity() * l.rows() * l.cols()));
            }
            assertThat(zeros(r.weights())).isEqualTo(r.pruned());
            assertThat(l.w()).as("input untouched").isEqualTo(layer(48, 256, 512, 1).w());
        }
    }

    @Test
    void identityHessianReducesToMagnitude() {
        int rows = 24, cols = 128;
        Layer l = layer(rows, cols, 4, 2);
        double[] eye = new double[cols * cols];
        for (int i = 0; i < cols; i++) eye[i * cols + i] = 3.0;
        Layer id = new Layer(l.w(), rows, cols, eye);
        // one block of 128 columns: the mask is chosen over the whole matrix, as magnitude's per-layer scope
        SparseGpt.Result r = SparseGpt.prune("w", l.w(), rows, cols, eye, Pattern.unstructured(0.6), SparseGpt.Options.DEFAULT, null, POOL);
        assertThat(r.weights()).isEqualTo(magnitude(id, Pattern.unstructured(0.6)));
        Layer wide = layer(rows, 256, 4, 3);
        double[] eye2 = new double[256 * 256];
        for (int i = 0; i < 256; i++) eye2[i * 256 + i] = 0.5;
        for (Pattern p : new Pattern[]{Pattern.nm(2, 4), Pattern.nm(4, 8)}) {
            SparseGpt.Result n = SparseGpt.prune("w", wide.w(), rows, 256, eye2, p, SparseGpt.Options.DEFAULT, null, POOL);
            assertThat(n.weights()).as(p.toString()).isEqualTo(magnitude(new Layer(wide.w(), rows, 256, eye2), p));
        }
    }

    @Test
    void jointSparseQuantLiesOnTheGridAndBeatsPruneThenRtn() {
        Layer l = layer(32, 256, 512, 4);
        for (String type : new String[]{"int8-g32", "Q4_0", "Q8_0", "Q4_K", "int4-g32"}) {
            for (Pattern p : new Pattern[]{Pattern.unstructured(0.5), Pattern.nm(2, 4)}) {
                WeightFormat f = WeightFormat.parse(type);
                Grid grid = Grid.of(f, "w", l.rows(), l.cols(), null);
                SparseGpt.Result joint = SparseGpt.prune("w", l.w(), l.rows(), l.cols(), l.h(), p, SparseGpt.Options.DEFAULT, grid, POOL);
                SparseGpt.Result sparse = SparseGpt.prune("w", l.w(), l.rows(), l.cols(), l.h(), p, SparseGpt.Options.DEFAULT, null, POOL);
                float[] thenRtn = Grid.of(f, "w", l.rows(), l.cols(), null).roundToNearest(sparse.weights(), POOL);
                double eJ = err(l, joint.weights()), eT = err(l, thenRtn), eS = err(l, sparse.weights());
                System.out.printf(java.util.Locale.ROOT, "%s %s: sparsegpt %.1f, then RTN %.1f, joint %.1f; zeros %.3f%n", type, p, eS, eT, eJ,
                        zeros(joint.weights()) / (double) joint.weights().length);
                if (type.contains("8")) {
                    // 8 bits: the rounding error is small against the pruning error; the joint sweep is as good (±1 %)
                    assertThat(eJ).as(type + " " + p).isLessThan(eT * 1.01);
                } else {
                    assertThat(eJ).as(type + " " + p).isLessThan(eT);
                }
                assertThat(joint.quantized()).isNotNull();
                assertThat(joint.quantized().dequantize()).isEqualTo(joint.weights());
                if (!type.equals("Q4_K")) {
                    // zero is on these grids: the mask's weights are exact zeros
                    assertThat(zeros(joint.weights())).isGreaterThanOrEqualTo(joint.pruned());
                    if (p.isNm()) assertThat(Pruner.satisfiesNm(joint.weights(), l.cols(), 2, 4)).isTrue();
                }
                if (type.startsWith("Q4_0") || type.startsWith("Q8_0")) {
                    // on the grid: round-to-nearest of the result gives it back
                    float[] again = Grid.of(f, "w", l.rows(), l.cols(), null).roundToNearest(joint.weights(), POOL);
                    assertThat(again).as(type).isEqualTo(joint.weights());
                }
                if (joint.quantized() instanceof QuantizedWeight.Int qi) {
                    for (int i = 0; i < qi.q().length; i++) assertThat((int) qi.q()[i]).isBetween(qi.format().qmin(), qi.format().qmax());
                }
            }
        }
    }

    @Test
    void deadColumnsArePrunedFirstAndBadInputIsRefused() {
        Layer l = layer(16, 64, 256, 5);
        double[] h = l.h().clone();
        for (int j = 0; j < 64; j++) {
            h[3 * 64 + j] = 0;
            h[j * 64 + 3] = 0;
        }
        SparseGpt.Result r = SparseGpt.prune("w", l.w(), 16, 64, h, Pattern.unstructured(0.25), SparseGpt.Options.DEFAULT, null, POOL);
        for (int row = 0; row < 16; row++) assertThat(r.weights()[row * 64 + 3]).isZero();
        assertThat(r.pruned()).isEqualTo(256);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> SparseGpt.prune("w", l.w(), 16, 64, l.h(), Pattern.nm(2, 48),
                SparseGpt.Options.DEFAULT, null, POOL)).hasMessageContaining("does not divide");
        float[] nan = l.w().clone();
        nan[5] = Float.NaN;
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> SparseGpt.prune("w", nan, 16, 64, l.h(), Pattern.unstructured(0.5),
                SparseGpt.Options.DEFAULT, null, POOL)).hasMessageContaining("NaN");
    }
}
