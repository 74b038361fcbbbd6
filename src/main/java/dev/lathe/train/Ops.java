package dev.lathe.train;

import dev.lathe.model.RopeScaling;

import java.util.Arrays;

/**
 * The element-wise and attention operations of the decoder, forward and backward, on plain row-major
 * float arrays. Rows are tokens; row {@code r} of a batch of sequences of length T is at position
 * {@code r % T}. Backward methods add into gradient arrays named {@code ...Acc} and overwrite the others.
 */
public final class Ops {
    private Ops() {}

    private interface RowRange {
        void run(int r0, int r1);
    }

    private static void rows(Parallel par, int rows, int chunk, RowRange body) {
        par.forEach((rows + chunk - 1) / chunk, t -> body.run(t * chunk, Math.min(rows, (t + 1) * chunk)));
    }

    // ------------------------------------------------------------------------------------ embedding

    /** out[i] = table[tokens[i]] (rows of length d). */
    public static void embedding(int[] tokens, int n, float[] table, int d, float[] out) {
        for (int i = 0; i < n; i++) System.arraycopy(table, tokens[i] * d, out, i * d, d);
    }

    /** tableGradAcc[tokens[i]] += dy[i] (serial: rows of one token add in order). */
    public static void embeddingBackward(int[] tokens, int n, float[] dy, int d, float[] tableGradAcc) {
        for (int i = 0; i < n; i++) Kernels.add(dy, i * d, tableGradAcc, tokens[i] * d, d);
    }

    // ------------------------------------------------------------------------------------ RMSNorm

    /** y = w ⊙ x·r, r[row] = 1/√(mean(x²)+eps) (stored for backward). */
    public static void rmsnorm(Parallel par, float[] x, float[] w, float[] y, float[] r, int n, int d, float eps) {
        rows(par, n, 8, (r0, r1) -> {
            for (int row = r0; row < r1; row++) {
                int o = row * d;
                float ss = Kernels.dot(x, o, x, o, d);
                float inv = (float) (1.0 / Math.sqrt(ss / d + eps));
                r[row] = inv;
                for (int j = 0; j < d; j++) y[o + j] = w[j] * (x[o + j] * inv);
            }
        });
    }

    /** dxAcc += ∂L/∂x, wGradAcc += ∂L/∂w given dy = ∂L/∂y. */
    public static void rmsnormBackward(Parallel par, float[] x, float[] w, float[] r, float[] dy, float[] dxAcc,
                                       float[] wGradAcc, int n, int d) {
        par.forEach((d + 63) / 64, t -> {
            int c1 = Math.min(d, (t + 1) * 64);
            for (int row = 0; row < n; row++) {
                int o = row * d;
                float inv = r[row];
                for (int j = t * 64; j < c1; j++) wGradAcc[j] += dy[o + j] * (x[o + j] * inv);
            }
        });
        rows(par, n, 8, (r0, r1) -> {
            for (int row = r0; row < r1; row++) {
                int o = row * d;
                float inv = r[row];
                double m = 0;
                for (int j = 0; j < d; j++) m += (double) dy[o + j] * w[j] * x[o + j];
                float c = (float) (m * inv * inv / d);
                for (int j = 0; j < d; j++) dxAcc[o + j] += inv * (dy[o + j] * w[j] - x[o + j] * c);
            }
        });
    }

    // ------------------------------------------------------------------------------------ RoPE

    /**
     * RoPE tables {cos, sin}, each {@code [seqLen, headDim/2]}: angle p·θ^(-2i/headDim), with Llama 3
     * frequency scaling when {@code scaling} is not null. Computed in double.
     */
    public static float[][] ropeTables(int headDim, double theta, RopeScaling scaling, int seqLen) {
        int half = headDim / 2;
        double[] inv = new double[half];
        for (int i = 0; i < half; i++) inv[i] = Math.pow(theta, -2.0 * i / headDim);
        if (scaling != null) {
            double orig = scaling.originalContextLength();
            double lowWl = orig / scaling.lowFreqFactor(), highWl = orig / scaling.highFreqFactor();
            for (int i = 0; i < half; i++) {
                double wl = 2 * Math.PI / inv[i];
                if (wl < highWl) continue;
                if (wl > lowWl) {
                    inv[i] /= scaling.factor();
                } else {
                    double smooth = (orig / wl - scaling.lowFreqFactor()) / (scaling.highFreqFactor() - scaling.lowFreqFactor());
                    inv[i] = (1 - smooth) * inv[i] / scaling.factor() + smooth * inv[i];
                }
            }
        }
        float[] cos = new float[seqLen * half], sin = new float[seqLen * half];
        for (int p = 0; p < seqLen; p++) {
            for (int i = 0; i < half; i++) {
                double ang = p * inv[i];
                cos[p * half + i] = (float) Math.cos(ang);
                sin[p * half + i] = (float) Math.sin(ang);
            }
        }
        return new float[][] {cos, sin};
    }

    /**
     * Rotates every head of every row of x {@code [n, heads·headDim]} in place. Pairs (i, i+d/2) (HF
     * rotate_half) or, when {@code interleaved}, (2i, 2i+1). {@code inverse} applies the transposed
     * rotation, which is the backward pass.
     */
    public static void rope(Parallel par, float[] x, int n, int seqLen, int heads, int headDim, boolean interleaved,
                            float[] cos, float[] sin, boolean inverse) {
        int half = headDim / 2, width = heads * headDim;
        float sign = inverse ? -1f : 1f;
        rows(par, n, 8, (r0, r1) -> {
            for (int row = r0; row < r1; row++) {
                int tab = (row % seqLen) * half;
                for (int h = 0; h < heads; h++) {
                    int o = row * width + h * headDim;
                    for (int i = 0; i < half; i++) {
                        int i1 = interleaved ? o + 2 * i : o + i;
                        int i2 = interleaved ? i1 + 1 : i1 + half;
                        float c = cos[tab + i], s = sign * sin[tab + i];
                        float a = x[i1], b = x[i2];
                        x[i1] = a * c - b * s;
                        x[i2] = b * c + a * s;
                    }
                }
            }
        });
    }

    // ------------------------------------------------------------------------------------ attention

    /**
     * Causal softmax attention with grouped KV heads: q {@code [B·T, nh·hd]}, k and v {@code [B·T, nkv·hd]},
     * query head h reads KV head h / (nh/nkv). Writes the probabilities {@code [B, nh, T, T]} (only s ≤ t
     * are meaningful) and out {@code [B·T, nh·hd]}. Parallel over (sequence, KV head).
     */
    public static void attention(Parallel par, float[] q, float[] k, float[] v, float[] probs, float[] out,
                                 int batch, int seqLen, int nh, int nkv, int hd) {
        int group = nh / nkv, qDim = nh * hd, kvDim = nkv * hd;
        float scale = (float) (1.0 / Math.sqrt(hd));
        par.forEach(batch * nkv, task -> {
            int b = task / nkv, kh = task % nkv;
            for (int gi = 0; gi < group; gi++) {
                int h = kh * group + gi;
                for (int t = 0; t < seqLen; t++) {
                    int qo = (b * seqLen + t) * qDim + h * hd;
                    int po = ((b * nh + h) * seqLen + t) * seqLen;
                    float max = Float.NEGATIVE_INFINITY;
                    for (int s = 0; s <= t; s++) {
                        float sc = Kernels.dot(q, qo, k, (b * seqLen + s) * kvDim + kh * hd, hd) * scale;
                        probs[po + s] = sc;
                        max = Math.max(max, sc);
                    }
                    double sum = 0;
                    for (int s = 0; s <= t; s++) {
                        float e = (float) Math.exp(probs[po + s] - max);
                        probs[po + s] = e;
                        sum += e;
                    }
                    float inv = (float) (1.0 / sum);
                    for (int s = 0; s <= t; s++) probs[po + s] *= inv;
                    Kernels.weightedRows(probs, po, 1, t + 1, v, b * seqLen * kvDim + kh * hd, kvDim, out, qo, hd, false);
                }
            }
        });
    }

    /** Gradients of {@link #attention}: writes dq, dk, dv (overwritten) from dOut and the saved probabilities. */
    public static void attentionBackward(Parallel par, float[] q, float[] k, float[] v, float[] probs, float[] dOut,
                                         float[] dq, float[] dk, float[] dv, int batch, int seqLen, int nh, int nkv, int hd) {
        int group = nh / nkv, qDim = nh * hd, kvDim = nkv * hd;
        float scale = (float) (1.0 / Math.sqrt(hd));
        par.forEach(batch * nkv, task -> {
            int b = task / nkv, kh = task % nkv;
            float[] ds = new float[seqLen * seqLen]; // dL/dscores of one head, row t = query
            int kvBase = b * seqLen * kvDim + kh * hd;
            for (int gi = 0; gi < group; gi++) {
                int h = kh * group + gi;
                int qBase = b * seqLen * qDim + h * hd;
                int pBase = (b * nh + h) * seqLen * seqLen;
                for (int t = 0; t < seqLen; t++) {
                    int qo = qBase + t * qDim, po = pBase + t * seqLen, ro = t * seqLen;
                    double dot = 0;
                    for (int s = 0; s <= t; s++) {
                        float g = Kernels.dot(dOut, qo, v, kvBase + s * kvDim, hd);
                        ds[ro + s] = g;
                        dot += (double) probs[po + s] * g;
                    }
                    float dsum = (float) dot;
                    for (int s = 0; s <= t; s++) ds[ro + s] = probs[po + s] * (ds[ro + s] - dsum) * scale;
                    // dq_t = Σ_s ds[t,s] k_s
                    Kernels.weightedRows(ds, ro, 1, t + 1, k, kvBase, kvDim, dq, qo, hd, false);
                }
                // dk_s (+)= Σ_{t≥s} ds[t,s] q_t ; dv_s (+)= Σ_{t≥s} p[t,s] dOut_t (heads of the group add up)
                for (int s = 0; s < seqLen; s++) {
                    int ko = kvBase + s * kvDim, cnt = seqLen - s;
                    Kernels.weightedRows(ds, s * seqLen + s, seqLen, cnt, q, qBase + s * qDim, qDim, dk, ko, hd, gi > 0);
                    Kernels.weightedRows(probs, pBase + s * seqLen + s, seqLen, cnt, dOut, qBase + s * qDim, qDim, dv, ko, hd, gi > 0);
                }
            }
        });
    }

    // ------------------------------------------------------------------------------------ SwiGLU

    static float sigmoid(float z) {
        return (float) (1.0 / (1.0 + Math.exp(-z)));
    }

    /** out = silu(g) ⊙ u; sig receives σ(g) for the backward pass. */
    public static void swiglu(Parallel par, float[] g, float[] u, float[] sig, float[] out, int len) {
        final int chunk = 1 << 13;
        par.forEach((len + chunk - 1) / chunk, t -> {
            int e = Math.min(len, (t + 1) * chunk);
            for (int i = t * chunk; i < e; i++) {
                float s = sigmoid(g[i]);
                sig[i] = s;
                out[i] = g[i] * s * u[i];
            }
        });
    }

    /** dg, du (overwritten) from dOut for {@link #swiglu}, given σ(g) from the forward pass. */
    public static void swigluBackward(Parallel par, float[] g, float[] u, float[] sig, float[] dOut, float[] dg, float[] du, int len) {
        final int chunk = 1 << 13;
        par.forEach((len + chunk - 1) / chunk, t -> {
            int e = Math.min(len, (t + 1) * chunk);
            for (int i = t * chunk; i < e; i++) {
                float gi = g[i], s = sig[i], da = dOut[i];
                du[i] = da * gi * s;
                dg[i] = da * u[i] * s * (1f + gi * (1f - s));
            }
        });
    }

    /** dst += src, parallel over chunks. */
    public static void addInPlace(Parallel par, float[] src, float[] dst, int len) {
        final int chunk = 1 << 14;
        par.forEach((len + chunk - 1) / chunk, t -> {
            int o = t * chunk;
            Kernels.add(src, o, dst, o, Math.min(chunk, len - o));
        });
    }
}
