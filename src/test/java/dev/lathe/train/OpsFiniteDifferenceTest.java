package dev.lathe.train;

import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import org.junit.jupiter.api.Test;

import java.util.function.DoubleSupplier;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Central finite differences (float forward, double objective) against each operation's backward. The
 * objective is L = Σ R ⊙ y for a fixed random R, so ∂L/∂y = R.
 */
class OpsFiniteDifferenceTest {
    private static final Parallel PAR = new Parallel(2);
    private static final float EPS = 1e-2f;

    private static float[] randn(long seed, int n, double std) {
        Rng r = new Rng(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (std * r.nextGaussian());
        return a;
    }

    private static double dot(float[] r, float[] y) {
        double s = 0;
        for (int i = 0; i < r.length; i++) s += (double) r[i] * y[i];
        return s;
    }

    /** Compares analytic with central differences of f over every coordinate of x. */
    private static void check(String what, float[] x, float[] analytic, DoubleSupplier f) {
        double maxAbs = 0, maxErr = 0;
        for (int i = 0; i < x.length; i++) {
            float keep = x[i];
            x[i] = keep + EPS;
            double up = f.getAsDouble();
            x[i] = keep - EPS;
            double down = f.getAsDouble();
            x[i] = keep;
            double fd = (up - down) / (2 * EPS);
            maxAbs = Math.max(maxAbs, Math.abs(fd));
            maxErr = Math.max(maxErr, Math.abs(fd - analytic[i]));
        }
        assertThat(maxAbs).as(what + " gradient is not trivially zero").isGreaterThan(1e-3);
        assertThat(maxErr / maxAbs).as(what + " relative error").isLessThan(2e-3);
    }

    @Test
    void rmsnorm() {
        int n = 3, d = 8;
        float[] x = randn(1, n * d, 1), w = randn(2, d, 1), rr = randn(3, n * d, 1);
        float[] y = new float[n * d], r = new float[n];
        DoubleSupplier f = () -> {
            Ops.rmsnorm(PAR, x, w, y, r, n, d, 1e-5f);
            return dot(rr, y);
        };
        f.getAsDouble();
        float[] dx = new float[n * d], dw = new float[d];
        Ops.rmsnormBackward(PAR, x, w, r, rr, dx, dw, n, d);
        check("rmsnorm dx", x, dx, f);
        check("rmsnorm dw", w, dw, f);
    }

    @Test
    void ropeBothStyles() {
        for (boolean interleaved : new boolean[] {false, true}) {
            int seqLen = 5, heads = 2, hd = 6, n = 2 * seqLen, width = heads * hd;
            float[][] cs = Ops.ropeTables(hd, 10000.0, null, seqLen);
            float[] x = randn(4, n * width, 1), rr = randn(5, n * width, 1);
            float[] y = new float[n * width];
            DoubleSupplier f = () -> {
                System.arraycopy(x, 0, y, 0, y.length);
                Ops.rope(PAR, y, n, seqLen, heads, hd, interleaved, cs[0], cs[1], false);
                return dot(rr, y);
            };
            float[] dx = rr.clone();
            Ops.rope(PAR, dx, n, seqLen, heads, hd, interleaved, cs[0], cs[1], true);
            check("rope interleaved=" + interleaved, x, dx, f);
        }
    }

    @Test
    void causalAttentionWithGroupedKvHeads() {
        int batch = 2, seqLen = 4, nh = 4, nkv = 2, hd = 4;
        int n = batch * seqLen, qDim = nh * hd, kvDim = nkv * hd;
        float[] q = randn(6, n * qDim, 1), k = randn(7, n * kvDim, 1), v = randn(8, n * kvDim, 1), rr = randn(9, n * qDim, 1);
        float[] probs = new float[batch * nh * seqLen * seqLen], out = new float[n * qDim];
        DoubleSupplier f = () -> {
            Ops.attention(PAR, q, k, v, probs, out, batch, seqLen, nh, nkv, hd);
            return dot(rr, out);
        };
        f.getAsDouble();
        float[] dq = new float[q.length], dk = new float[k.length], dv = new float[v.length];
        Ops.attentionBackward(PAR, q, k, v, probs, rr, dq, dk, dv, batch, seqLen, nh, nkv, hd);
        check("attention dq", q, dq, f);
        check("attention dk", k, dk, f);
        check("attention dv", v, dv, f);
        // causality: the first position's output does not depend on later keys
        float first = out[0];
        k[(seqLen - 1) * kvDim] += 1f;
        f.getAsDouble();
        assertThat(out[0]).isEqualTo(first);
    }

    @Test
    void swiglu() {
        int len = 12;
        float[] g = randn(10, len, 2), u = randn(11, len, 1), rr = randn(12, len, 1), out = new float[len], sig = new float[len];
        DoubleSupplier f = () -> {
            Ops.swiglu(PAR, g, u, sig, out, len);
            return dot(rr, out);
        };
        f.getAsDouble();
        float[] dg = new float[len], du = new float[len];
        Ops.swigluBackward(PAR, g, u, sig, rr, dg, du, len);
        check("swiglu dg", g, dg, f);
        check("swiglu du", u, du, f);
    }

    @Test
    void embeddingWithRepeatedTokens() {
        int vocab = 5, d = 3;
        int[] tokens = {1, 3, 1, 0};
        float[] table = randn(13, vocab * d, 1), rr = randn(14, tokens.length * d, 1), out = new float[tokens.length * d];
        DoubleSupplier f = () -> {
            Ops.embedding(tokens, tokens.length, table, d, out);
            return dot(rr, out);
        };
        float[] dt = new float[vocab * d];
        Ops.embeddingBackward(tokens, tokens.length, rr, d, dt);
        check("embedding", table, dt, f);
        for (int j = 0; j < d; j++) assertThat(dt[4 * d + j]).isZero(); // token 4 unused
    }

    @Test
    void crossEntropyWithIgnoredRow() {
        int rows = 3, vocab = 5;
        int[] targets = {2, CrossEntropyLoss.DEFAULT_IGNORE_INDEX, 4};
        float[] logits = randn(15, rows * vocab, 2);
        CrossEntropyLoss ce = new CrossEntropyLoss(CrossEntropyLoss.DEFAULT_IGNORE_INDEX, PAR);
        assertThat(ce.count(targets, rows)).isEqualTo(2);
        float[] grad = new float[rows * vocab];
        double sum = ce.sum(logits, rows, vocab, targets, grad, 1f);
        double expected = 0;
        for (int r : new int[] {0, 2}) {
            double z = 0;
            for (int j = 0; j < vocab; j++) z += Math.exp(logits[r * vocab + j]);
            expected += Math.log(z) - logits[r * vocab + targets[r]];
        }
        assertThat(sum).isCloseTo(expected, org.assertj.core.data.Offset.offset(1e-6));
        check("cross-entropy", logits, grad, () -> ce.sum(logits, rows, vocab, targets, null, 0f));
        for (int j = 0; j < vocab; j++) assertThat(grad[vocab + j]).isZero();
        // in-place gradient gives the same numbers
        float[] inPlace = logits.clone();
        ce.sum(inPlace, rows, vocab, targets, inPlace, 1f);
        assertThat(inPlace).containsExactly(grad);
    }

    @Test
    void wholeModelInterleavedRopeBiasesAndTiedEmbeddings() {
        ModelConfig cfg = new ModelConfig("qwen2", 16, 2, 4, 2, 4, 24, 11, 1e-5f, 10000f, RopeStyle.INTERLEAVED, null,
                64, true, true);
        TrainModel m = TrainModel.init(cfg, 3, false, PAR);
        // make biases and norms non-trivial
        Rng r = new Rng(99);
        for (TrainModel.Param p : m.params()) {
            if (!p.decay()) for (int i = 0; i < p.size(); i++) p.data()[i] += (float) (0.3 * r.nextGaussian());
            else for (int i = 0; i < p.size(); i++) p.data()[i] *= 10f;
        }
        int batch = 2, seqLen = 5;
        int[] tokens = new int[batch * seqLen], targets = new int[batch * seqLen];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = r.nextInt(cfg.vocabSize());
            targets[i] = i % 4 == 3 ? -100 : r.nextInt(cfg.vocabSize());
        }
        Loss ce = new CrossEntropyLoss(-100, PAR);
        m.zeroGrad();
        m.forwardBackward(tokens, targets, batch, seqLen, ce, 1f);
        for (TrainModel.Param p : m.params()) {
            float[] g = p.grad().clone();
            // a handful of coordinates per tensor
            float[] sub = new float[Math.min(6, p.size())];
            float[] ana = new float[sub.length];
            int[] idx = new int[sub.length];
            for (int j = 0; j < sub.length; j++) {
                idx[j] = (int) ((long) j * p.size() / sub.length);
                sub[j] = p.data()[idx[j]];
                ana[j] = g[idx[j]];
            }
            check(p.name(), sub, ana, () -> {
                for (int j = 0; j < sub.length; j++) p.data()[idx[j]] = sub[j];
                return m.lossSum(tokens, targets, batch, seqLen, ce);
            });
            for (int j = 0; j < sub.length; j++) p.data()[idx[j]] = sub[j];
        }
    }
}
