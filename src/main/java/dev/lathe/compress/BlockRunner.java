package dev.lathe.compress;

import dev.lathe.model.ModelConfig;
import dev.lathe.model.Parallel;
import dev.lathe.model.RopeStyle;

/**
 * Runs one decoder block on one sequence outside the engine (same arithmetic as
 * {@link dev.lathe.model.LlamaModel}: llama.cpp's RMSNorm, RoPE tables in float, causal softmax attention,
 * SwiGLU) and shows every projection's input to an {@link Observer}. Optionally rounds q, K, V and the
 * attention probabilities to F16 as llama.cpp does with its default F16 KV cache.
 */
public final class BlockRunner {
    /** Sees the input {@code x} ({@code [rows, cols]}) of the projections reading {@code input}. */
    @FunctionalInterface
    public interface Observer {
        void onInput(Proj.Input input, float[] x, int rows, int cols);
    }

    private final ModelConfig c;
    private final double[] invFreq;
    private final boolean f16Attention;
    private final Parallel pool;

    public BlockRunner(ModelConfig config, double[] invFreq, boolean f16Attention, Parallel pool) {
        this.c = config;
        this.invFreq = invFreq;
        this.f16Attention = f16Attention;
        this.pool = pool;
    }

    public ModelConfig config() {
        return c;
    }

    /** Replaces {@code x} ({@code [t, dim]}, positions 0..t-1) by the block's output. */
    public void forward(BlockWeights b, float[] x, int t, Observer obs) {
        int dim = c.dim(), qDim = c.qDim(), kvDim = c.kvDim(), ffn = c.ffnDim();
        float[] h = new float[t * dim];
        rmsNormRows(x, b.attnNorm, h, t, dim, c.normEps());
        if (obs != null) obs.onInput(Proj.Input.ATTN_IN, h, t, dim);
        float[] q = new float[t * qDim], k = new float[t * kvDim], v = new float[t * kvDim];
        b.linear(Proj.Q, pool).forward(h, q, t);
        b.linear(Proj.K, pool).forward(h, k, t);
        b.linear(Proj.V, pool).forward(h, v, t);
        if (b.bq != null) {
            addBias(q, b.bq, t);
            addBias(k, b.bk, t);
            addBias(v, b.bv, t);
        }
        rope(q, t, c.nHeads());
        rope(k, t, c.nKvHeads());
        float[] att = attention(q, k, v, t);
        if (obs != null) obs.onInput(Proj.Input.ATTN_OUT, att, t, qDim);
        float[] o = new float[t * dim];
        b.linear(Proj.O, pool).forward(att, o, t);
        for (int i = 0; i < t * dim; i++) x[i] += o[i];
        rmsNormRows(x, b.ffnNorm, h, t, dim, c.normEps());
        if (obs != null) obs.onInput(Proj.Input.FFN_IN, h, t, dim);
        float[] g = new float[t * ffn], u = new float[t * ffn];
        b.linear(Proj.GATE, pool).forward(h, g, t);
        b.linear(Proj.UP, pool).forward(h, u, t);
        for (int i = 0; i < g.length; i++) g[i] = (float) (g[i] / (1.0 + Math.exp(-g[i]))) * u[i];
        if (obs != null) obs.onInput(Proj.Input.FFN_MID, g, t, ffn);
        b.linear(Proj.DOWN, pool).forward(g, o, t);
        for (int i = 0; i < t * dim; i++) x[i] += o[i];
    }

    /** llama.cpp's rms_norm (double sum of squares, float scale) times the weight, for each row. */
    public static void rmsNormRows(float[] x, float[] w, float[] out, int rows, int dim, float eps) {
        for (int r = 0; r < rows; r++) {
            int o = r * dim;
            double ss = 0;
            for (int i = 0; i < dim; i++) ss += x[o + i] * x[o + i];
            float scale = (float) (1.0 / Math.sqrt((float) (ss / dim) + eps));
            for (int i = 0; i < dim; i++) out[o + i] = (x[o + i] * scale) * w[i];
        }
    }

    private static void addBias(float[] y, float[] b, int n) {
        for (int r = 0; r < n; r++) for (int i = 0; i < b.length; i++) y[r * b.length + i] += b[i];
    }

    private void rope(float[] a, int t, int heads) {
        int hd = c.headDim(), half = hd / 2;
        boolean inter = c.ropeStyle() == RopeStyle.INTERLEAVED;
        for (int p = 0; p < t; p++) {
            for (int i = 0; i < half; i++) {
                double ang = p * invFreq[i];
                float cs = (float) Math.cos(ang), sn = (float) Math.sin(ang);
                for (int hh = 0; hh < heads; hh++) {
                    int base = p * heads * hd + hh * hd;
                    int i0 = inter ? base + 2 * i : base + i, i1 = inter ? i0 + 1 : base + i + half;
                    float x0 = a[i0], x1 = a[i1];
                    a[i0] = x0 * cs - x1 * sn;
                    a[i1] = x0 * sn + x1 * cs;
                }
            }
        }
    }

    private static float f16(float v) {
        return Float.float16ToFloat(Float.floatToFloat16(v));
    }

    private float[] attention(float[] q, float[] k, float[] v, int t) {
        int nh = c.nHeads(), hd = c.headDim(), kvDim = c.kvDim(), qDim = c.qDim();
        int group = nh / c.nKvHeads();
        if (f16Attention) {
            for (int i = 0; i < q.length; i++) q[i] = f16(q[i]);
            for (int i = 0; i < k.length; i++) {
                k[i] = f16(k[i]);
                v[i] = f16(v[i]);
            }
        }
        float scale = (float) (1.0 / Math.sqrt(hd));
        float[] out = new float[t * qDim];
        pool.forRange(t * nh, 8, (worker, from, to) -> {
            float[] sc = new float[t];
            for (int task = from; task < to; task++) {
                int p = task / nh, h = task % nh;
                int qo = p * qDim + h * hd, kvo = (h / group) * hd;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j <= p; j++) {
                    float s = 0;
                    int ko = j * kvDim + kvo;
                    for (int d = 0; d < hd; d++) s += q[qo + d] * k[ko + d];
                    sc[j] = s * scale;
                    max = Math.max(max, sc[j]);
                }
                double sum = 0;
                for (int j = 0; j <= p; j++) {
                    sc[j] = (float) Math.exp(sc[j] - max);
                    sum += sc[j];
                }
                float inv = (float) (1.0 / sum);
                for (int j = 0; j <= p; j++) {
                    float pr = sc[j] * inv;
                    if (f16Attention) pr = f16(pr);
                    int vo = j * kvDim + kvo;
                    for (int d = 0; d < hd; d++) out[qo + d] += pr * v[vo + d];
                }
            }
        });
        return out;
    }
}
