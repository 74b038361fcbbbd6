package dev.lathe.tensor.quant;

import dev.lathe.LatheException;
import dev.lathe.tensor.GgmlType;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The vector scale searches ({@link ScaleSearch}) against the scalar ports of ggml ({@link QuantMath}'s
 * ...Scalar methods): same L codes and the same bits of scale and min, on random blocks of many shapes, with
 * and without weights, in every (n, nmax, rmin, rdelta, nstep, useMad, qkx3) combination the codecs use.
 */
class ScaleSearchTest {

    /** Block shapes: values that are typical, degenerate, tiny, huge, one-signed, tied on the rounding grid. */
    enum Shape {
        GAUSSIAN, HEAVY_TAILED, ZERO, CONSTANT, NEGATIVE_CONSTANT, ALL_NEGATIVE, ALL_POSITIVE, NEAR_EPS, TINY, SUBNORMAL,
        LARGE, HUGE, SPARSE, HALF_INTEGERS, ONE_OUTLIER, MIXED_MAGNITUDES
    }

    static float[] block(Shape s, int n, Random r) {
        float[] x = new float[n];
        float c = (float) r.nextGaussian();
        for (int i = 0; i < n; i++) {
            double g = r.nextGaussian();
            x[i] = switch (s) {
                case GAUSSIAN -> (float) (0.02 * g);
                case HEAVY_TAILED -> (float) (g * Math.exp(2 * r.nextGaussian()));
                case ZERO -> 0f;
                case CONSTANT -> c;
                case NEGATIVE_CONSTANT -> -Math.abs(c) - 0.1f;
                case ALL_NEGATIVE -> (float) (-Math.abs(g) - 0.01);
                case ALL_POSITIVE -> (float) (Math.abs(g) + 0.01);
                case NEAR_EPS -> (float) (1e-15 * g * (0.5 + r.nextDouble()));
                case TINY -> (float) (1e-30 * g);
                case SUBNORMAL -> (float) (1e-41 * g);
                case LARGE -> (float) (1e4 * g);
                case HUGE -> (float) (1e18 * g);
                case SPARSE -> r.nextInt(6) == 0 ? (float) g : 0f;
                case HALF_INTEGERS -> (float) (Math.round(8 * g) * 0.5);
                case ONE_OUTLIER -> i == r.nextInt(n) ? (float) (50 * g) : (float) (0.01 * g);
                case MIXED_MAGNITUDES -> (float) (g * Math.pow(10, r.nextInt(12) - 6));
            };
        }
        return x;
    }

    /** Weight sets: none, the codecs' own forms and adversarial ones (zeros, all zero, wide range). */
    enum Weights { NONE, IMATRIX, AV_X, RANDOM_WITH_ZEROS, ALL_ZERO, WIDE }

    static float[] weights(Weights k, float[] x, int xo, int n, Random r) {
        if (k == Weights.NONE) return null;
        float[] w = new float[n];
        float sumX2 = 0;
        for (int i = 0; i < n; i++) sumX2 += x[xo + i] * x[xo + i];
        float sigma2 = 2 * sumX2 / n;
        for (int i = 0; i < n; i++) {
            float v = x[xo + i];
            w[i] = switch (k) {
                case IMATRIX -> (float) Math.abs(r.nextGaussian()) * QuantMath.sqrtf(sigma2 + v * v);
                case AV_X -> QuantMath.sqrtf(sumX2 / n) + Math.abs(v);
                case RANDOM_WITH_ZEROS -> r.nextInt(5) == 0 ? 0f : (float) Math.abs(r.nextGaussian());
                case ALL_ZERO -> 0f;
                case WIDE -> (float) Math.pow(10, r.nextInt(20) - 10) * r.nextFloat();
                case NONE -> throw new AssertionError();
            };
        }
        return w;
    }

    /** (qkx3, n, nmax, rmin, rdelta, nstep, useMad) of the codecs' make_qkx calls. */
    record Qkx(boolean qkx3, int n, int nmax, float rmin, float rdelta, int nstep, boolean useMad) {}

    static final Qkx[] QKX = {
            new Qkx(false, 32, 15, -1.f, 0.1f, 20, false),   // Q4_K ref
            new Qkx(false, 32, 31, -0.5f, 0.1f, 15, false),  // Q5_K ref
            new Qkx(false, 16, 3, -0.5f, 0.1f, 15, true),    // Q2_K ref
            new Qkx(true, 32, 15, -0.9f, 0.05f, 36, false),  // Q4_K impl, Q4_1
            new Qkx(true, 32, 31, -0.9f, 0.05f, 36, false),  // Q5_K impl, Q5_1
            new Qkx(true, 16, 3, -0.9f, 0.05f, 36, false),   // Q2_K impl
            new Qkx(true, 32, 15, -0.9f, 0.05f, 1, true),    // not used by a codec: smallest search, mad
    };

    @Test
    void qkxVectorEqualsScalar() {
        Random r = new Random(20260701);
        int calls = 0;
        for (Qkx q : QKX) {
            for (Shape s : Shape.values()) {
                for (Weights wk : Weights.values()) {
                    for (int t = 0; t < 40; t++) {
                        int xo = r.nextInt(3), wo = r.nextInt(3), lo = r.nextInt(3);
                        float[] x = new float[xo + q.n()];
                        System.arraycopy(block(s, q.n(), r), 0, x, xo, q.n());
                        float[] w0 = weights(wk, x, xo, q.n(), r);
                        float[] w = null;
                        if (w0 != null) {
                            w = new float[wo + q.n()];
                            System.arraycopy(w0, 0, w, wo, q.n());
                        }
                        checkQkx(q, x, xo, w, wo, lo, s + "/" + wk + "/" + t);
                        calls++;
                    }
                }
            }
        }
        assertThat(calls).isEqualTo(QKX.length * Shape.values().length * Weights.values().length * 40);
    }

    private static void checkQkx(Qkx q, float[] x, int xo, float[] w, int wo, int lo, String what) {
        byte[] ls = new byte[lo + q.n()], lv = new byte[lo + q.n()], laux = new byte[q.n()];
        float[] ms = {Float.NaN, Float.NaN}, mv = {Float.NaN, Float.NaN};
        float ss = QuantMath.makeQkxQuantsScalar(q.qkx3(), q.n(), q.nmax(), x, xo, w, wo, ls, lo, ms, 1, laux,
                q.rmin(), q.rdelta(), q.nstep(), q.useMad());
        float sv = ScaleSearch.makeQkxQuants(q.qkx3(), q.n(), q.nmax(), x, xo, w, wo, lv, lo, mv, 1,
                q.rmin(), q.rdelta(), q.nstep(), q.useMad());
        String ctx = q + " " + what + " x=" + Arrays.toString(x) + " w=" + Arrays.toString(w);
        assertThat(Float.floatToRawIntBits(sv)).as("scale " + ctx).isEqualTo(Float.floatToRawIntBits(ss));
        assertThat(Float.floatToRawIntBits(mv[1])).as("min " + ctx).isEqualTo(Float.floatToRawIntBits(ms[1]));
        assertThat(lv).as("L " + ctx).isEqualTo(ls);
    }

    /** (n, nmax) of the codecs' make_qx_quants calls: Q6_K, Q5_0, Q4_0, Q3_K values, Q3_K's scales. */
    static final int[][] QX = {{16, 32}, {32, 16}, {32, 8}, {16, 4}};

    @Test
    void qxVectorEqualsScalar() {
        Random r = new Random(20260702);
        for (int[] q : QX) {
            int n = q[0], nmax = q[1];
            for (int rmse = 1; rmse <= 4; rmse++) {
                for (Shape s : Shape.values()) {
                    for (Weights wk : Weights.values()) {
                        if (rmse != 1 && wk != Weights.NONE) continue; // qw overrides rmseType
                        for (int t = 0; t < 40; t++) {
                            int xo = r.nextInt(3), qo = r.nextInt(3), lo = r.nextInt(3);
                            float[] x = new float[xo + n];
                            System.arraycopy(block(s, n, r), 0, x, xo, n);
                            float[] w0 = weights(wk, x, xo, n, r);
                            float[] w = null;
                            if (w0 != null) {
                                w = new float[qo + n];
                                System.arraycopy(w0, 0, w, qo, n);
                            }
                            byte[] ls = new byte[lo + n], lv = new byte[lo + n];
                            float ss = QuantMath.makeQxQuantsScalar(n, nmax, x, xo, ls, lo, rmse, w, qo);
                            float sv = ScaleSearch.makeQxQuants(n, nmax, x, xo, lv, lo, rmse, w, qo);
                            String ctx = "n=" + n + " nmax=" + nmax + " rmse=" + rmse + " " + s + "/" + wk + "/" + t
                                    + " x=" + Arrays.toString(x) + " w=" + Arrays.toString(w);
                            assertThat(Float.floatToRawIntBits(sv)).as("scale " + ctx).isEqualTo(Float.floatToRawIntBits(ss));
                            assertThat(lv).as("L " + ctx).isEqualTo(ls);
                        }
                    }
                }
            }
        }
    }

    /** Rows through whole codecs: the dispatching QuantMath methods give the scalar bytes with the vector search on. */
    @Test
    void codecsGiveTheSameBytesWithEitherSearch() {
        boolean saved = QuantMath.vectorSearch;
        try {
            for (GgmlType t : QuantTestSupport.WEIGHT_QUANTS) {
                for (QuantTestSupport.Kind k : QuantTestSupport.Kind.values()) {
                    float[] x = QuantTestSupport.row(k, 512, k.ordinal() * 31L + t.ordinal());
                    float[] imp = QuantTestSupport.importance(512, t.ordinal());
                    for (float[] qw : new float[][] {null, imp}) {
                        QuantMath.vectorSearch = false;
                        String scalar = quantized(t, x, qw);
                        QuantMath.vectorSearch = ScaleSearch.WORTHWHILE;
                        String vector = quantized(t, x, qw);
                        assertThat(vector).as(t + " " + k + (qw == null ? "" : " imatrix")).isEqualTo(scalar);
                    }
                }
            }
        } finally {
            QuantMath.vectorSearch = saved;
        }
    }

    /** The quantized bytes in hex, or the refusal (a degenerate block whose scale comes out NaN). */
    private static String quantized(GgmlType t, float[] x, float[] qw) {
        try {
            return HexFormat.of().formatHex(QuantTestSupport.quantize(t, x, qw).toArray(ValueLayout.JAVA_BYTE));
        } catch (LatheException e) {
            return e.getMessage();
        }
    }
}
