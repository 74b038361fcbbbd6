package dev.lathe.train;

import dev.lathe.LatheException;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeScaling;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A trainable LLaMA-family decoder in F32: parameters (and their gradients) as one float array per tensor
 * under canonical GGUF names, HF {@code [out, in]} row-major layout. Forward over a batch of sequences
 * {@code [B, T]} keeps what the backward pass needs (or, with activation checkpointing, only each layer's
 * input, recomputing the rest layer by layer during backward).
 *
 * <p>Covers: token embedding, RMSNorm, RoPE ({@link RopeStyle#HALF} and {@link RopeStyle#INTERLEAVED},
 * Llama 3 frequency scaling), causal attention with grouped KV heads (query head j uses KV head
 * j / (heads/kvHeads)), q/k/v biases, SwiGLU MLP, final norm, untied or tied output head (the tied
 * embedding's gradient is the sum of both uses).
 */
public final class TrainModel {

    /** One parameter tensor: values, gradient (same length) and whether weight decay applies. */
    public record Param(String name, long[] shape, float[] data, float[] grad, boolean decay) {
        public int size() {
            return data.length;
        }
    }

    private static final class Layer {
        Param attnNorm, wq, wk, wv, bq, bk, bv, wo, ffnNorm, wg, wu, wd;
    }

    /** Per-layer activations kept for backward. */
    private static final class Acts {
        float[] r1, h1, q, k, v, probs, att, xMid, r2, h2, g, u, act;
    }

    private final ModelConfig cfg;
    private final Parallel par;
    private final List<Param> params = new ArrayList<>();
    private final Map<String, Param> byName = new LinkedHashMap<>();
    private final Param embd, outNorm, output;
    private final Layer[] layers;
    private boolean checkpointActivations;

    // workspace, sized for (batch, seqLen)
    private int wsB = -1, wsT = -1;
    private float[][] xIn;      // per layer input (residual stream), plus the final one at index nLayers
    private Acts[] acts;
    private float[] rF, hF, logits;
    private float[] dx, dh, dq, dk, dv, datt, dg, du, dact, tA, tB, wT;
    private float[] ropeCos, ropeSin;
    private int ropeT = -1;
    private int[] curTokens;

    private TrainModel(ModelConfig cfg, Parallel par) {
        this.cfg = cfg;
        this.par = par;
        int d = cfg.dim(), f = cfg.ffnDim(), q = cfg.qDim(), kv = cfg.kvDim(), v = cfg.vocabSize();
        embd = add(TensorNames.TOKEN_EMBD, true, v, d);
        layers = new Layer[cfg.nLayers()];
        for (int l = 0; l < cfg.nLayers(); l++) {
            Layer y = new Layer();
            y.attnNorm = add(TensorNames.layer(l, "attn_norm.weight"), false, d);
            y.wq = add(TensorNames.layer(l, "attn_q.weight"), true, q, d);
            y.wk = add(TensorNames.layer(l, "attn_k.weight"), true, kv, d);
            y.wv = add(TensorNames.layer(l, "attn_v.weight"), true, kv, d);
            if (cfg.qkvBias()) {
                y.bq = add(TensorNames.layer(l, "attn_q.bias"), false, q);
                y.bk = add(TensorNames.layer(l, "attn_k.bias"), false, kv);
                y.bv = add(TensorNames.layer(l, "attn_v.bias"), false, kv);
            }
            y.wo = add(TensorNames.layer(l, "attn_output.weight"), true, d, q);
            y.ffnNorm = add(TensorNames.layer(l, "ffn_norm.weight"), false, d);
            y.wg = add(TensorNames.layer(l, "ffn_gate.weight"), true, f, d);
            y.wu = add(TensorNames.layer(l, "ffn_up.weight"), true, f, d);
            y.wd = add(TensorNames.layer(l, "ffn_down.weight"), true, d, f);
            layers[l] = y;
        }
        outNorm = add(TensorNames.OUTPUT_NORM, false, d);
        output = cfg.tiedEmbeddings() ? null : add(TensorNames.OUTPUT, true, v, d);
    }

    private Param add(String name, boolean decay, long... shape) {
        long n = Tensor.numElements(shape);
        if (n > Integer.MAX_VALUE - 16) throw new LatheException("tensor " + name + " " + Arrays.toString(shape) + " is too large to train in F32 arrays");
        Param p = new Param(name, shape, new float[(int) n], new float[(int) n], decay);
        params.add(p);
        byName.put(name, p);
        return p;
    }

    /**
     * A freshly initialised model: linear and embedding weights N(0, 0.02²) (output projections
     * {@code attn_output}, {@code ffn_down} with std 0.02/√(2·layers) when {@code scaledResidualInit}),
     * norm weights 1, biases 0. Each tensor draws from its own stream of {@code seed}.
     */
    public static TrainModel init(ModelConfig cfg, long seed, boolean scaledResidualInit) {
        return init(cfg, seed, scaledResidualInit, Parallel.common());
    }

    public static TrainModel init(ModelConfig cfg, long seed, boolean scaledResidualInit, Parallel par) {
        cfg.validate(null);
        TrainModel m = new TrainModel(cfg, par);
        for (int i = 0; i < m.params.size(); i++) {
            Param p = m.params.get(i);
            if (p.name().endsWith("norm.weight")) {
                Arrays.fill(p.data(), 1f);
            } else if (p.name().endsWith(".bias")) {
                Arrays.fill(p.data(), 0f);
            } else {
                double std = 0.02;
                if (scaledResidualInit && (p.name().endsWith("attn_output.weight") || p.name().endsWith("ffn_down.weight"))) {
                    std /= Math.sqrt(2.0 * cfg.nLayers());
                }
                Rng r = Rng.of(seed, i + 1);
                float[] a = p.data();
                for (int j = 0; j < a.length; j++) a[j] = (float) (std * r.nextGaussian());
            }
        }
        return m;
    }

    /** Loads every parameter from a weight source (any stored type, widened to F32), checking shapes. */
    public static TrainModel load(WeightSource src) {
        return load(src, Parallel.common());
    }

    public static TrainModel load(WeightSource src, Parallel par) {
        ModelConfig cfg = src.config();
        TrainModel m = new TrainModel(cfg, par);
        for (Param p : m.params) {
            Tensor t = src.tensor(p.name());
            if (!Arrays.equals(t.shape(), p.shape())) {
                throw new LatheException(src.path(), "tensor '" + p.name() + "' has shape " + Arrays.toString(t.shape())
                        + ", expected " + Arrays.toString(p.shape()));
            }
            float[] v = TensorOps.toFloats(t);
            for (int i = 0; i < v.length; i++) {
                if (!Float.isFinite(v[i])) throw new LatheException(src.path(), "tensor '" + p.name() + "' holds a non-finite value at index " + i);
            }
            System.arraycopy(v, 0, p.data(), 0, v.length);
        }
        return m;
    }

    public ModelConfig config() {
        return cfg;
    }

    /** Parameters in a fixed order (embedding, layers, final norm, output head). */
    public List<Param> params() {
        return Collections.unmodifiableList(params);
    }

    public Param param(String name) {
        Param p = byName.get(name);
        if (p == null) throw new IllegalArgumentException("no parameter " + name);
        return p;
    }

    public long parameterCount() {
        long n = 0;
        for (Param p : params) n += p.size();
        return n;
    }

    /** Keep only each layer's input during forward and recompute the layer during backward. */
    public void setCheckpointActivations(boolean on) {
        if (on != checkpointActivations) wsB = -1;
        checkpointActivations = on;
    }

    public boolean checkpointActivations() {
        return checkpointActivations;
    }

    public void zeroGrad() {
        for (Param p : params) Arrays.fill(p.grad(), 0f);
    }

    /** The parameters as F32 tensors (copies), e.g. for a writer. */
    public Map<String, Tensor> toTensors() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Param p : params) out.put(p.name(), TensorOps.ofFloats(p.name(), p.shape(), p.data()));
        return out;
    }

    // ------------------------------------------------------------------------------------------ API

    /**
     * Forward only. Returns the logits {@code [B·T, vocab]} (an internal buffer, valid until the next call).
     */
    public float[] forward(int[] tokens, int batch, int seqLen) {
        runForward(tokens, batch, seqLen, false);
        return logits;
    }

    /** Forward and loss (no gradients): the summed loss over counted targets. */
    public double lossSum(int[] tokens, int[] targets, int batch, int seqLen, Loss loss) {
        runForward(tokens, batch, seqLen, false);
        return loss.sum(logits, batch * seqLen, cfg.vocabSize(), targets, null, 0f);
    }

    /**
     * Forward, loss and backward: adds {@code gradScale · ∂(loss sum)/∂θ} into every parameter's gradient
     * and returns the summed loss over counted targets.
     */
    public double forwardBackward(int[] tokens, int[] targets, int batch, int seqLen, Loss loss, float gradScale) {
        runForward(tokens, batch, seqLen, true);
        int n = batch * seqLen;
        double s = loss.sum(logits, n, cfg.vocabSize(), targets, logits, gradScale);
        backward(logits);
        return s;
    }

    // ------------------------------------------------------------------------------------------ forward

    private void checkInput(int[] tokens, int batch, int seqLen) {
        if (batch <= 0 || seqLen <= 0) throw new IllegalArgumentException("batch " + batch + " x " + seqLen);
        if (tokens.length < batch * seqLen) throw new IllegalArgumentException("need " + batch * seqLen + " tokens, got " + tokens.length);
        for (int i = 0; i < batch * seqLen; i++) {
            if (tokens[i] < 0 || tokens[i] >= cfg.vocabSize()) throw new IllegalArgumentException("token id " + tokens[i] + " outside vocabulary of " + cfg.vocabSize());
        }
    }

    private void ensureWorkspace(int batch, int seqLen) {
        if (batch == wsB && seqLen == wsT) return;
        int n = batch * seqLen, d = cfg.dim(), f = cfg.ffnDim(), q = cfg.qDim(), kv = cfg.kvDim(), v = cfg.vocabSize();
        int nl = cfg.nLayers();
        xIn = new float[nl + 1][n * d];
        acts = new Acts[checkpointActivations ? 1 : nl];
        for (int i = 0; i < acts.length; i++) {
            Acts a = new Acts();
            a.r1 = new float[n];
            a.h1 = new float[n * d];
            a.q = new float[n * q];
            a.k = new float[n * kv];
            a.v = new float[n * kv];
            a.probs = new float[Math.multiplyExact(Math.multiplyExact(batch * cfg.nHeads(), seqLen), seqLen)];
            a.att = new float[n * q];
            a.xMid = new float[n * d];
            a.r2 = new float[n];
            a.h2 = new float[n * d];
            a.g = new float[n * f];
            a.u = new float[n * f];
            a.act = new float[n * f];
            acts[i] = a;
        }
        rF = new float[n];
        hF = new float[n * d];
        logits = new float[Math.multiplyExact(n, v)];
        dx = new float[n * d];
        dh = new float[n * d];
        dq = new float[n * q];
        dk = new float[n * kv];
        dv = new float[n * kv];
        datt = new float[n * q];
        dg = new float[n * f];
        du = new float[n * f];
        dact = new float[n * f];
        int widest = Math.max(Math.max(d, f), Math.max(q, v));
        tA = new float[Math.multiplyExact(widest, n)];
        tB = new float[Math.multiplyExact(widest, n)];
        long maxW = 0;
        for (Param p : params) maxW = Math.max(maxW, p.size());
        wT = new float[(int) maxW];
        wsB = batch;
        wsT = seqLen;
    }

    private Acts actsFor(int layer, boolean keep) {
        return acts[(checkpointActivations || !keep) ? 0 : layer];
    }

    private void runForward(int[] tokens, int batch, int seqLen, boolean keep) {
        checkInput(tokens, batch, seqLen);
        ensureWorkspace(batch, seqLen);
        ensureRope(seqLen);
        curTokens = Arrays.copyOf(tokens, batch * seqLen);
        int n = batch * seqLen, d = cfg.dim();
        float[] x0 = xIn[0];
        for (int i = 0; i < n; i++) System.arraycopy(embd.data(), tokens[i] * d, x0, i * d, d);
        for (int l = 0; l < layers.length; l++) layerForward(l, actsFor(l, keep), xIn[l], xIn[l + 1], batch, seqLen);
        float[] xf = xIn[layers.length];
        rmsnorm(xf, outNorm.data(), hF, rF, n);
        Param head = output != null ? output : embd;
        Kernels.nt(par, hF, 0, head.data(), 0, logits, 0, cfg.vocabSize(), n, cfg.vocabSize(), d, false);
    }

    private void layerForward(int l, Acts a, float[] x, float[] out, int batch, int seqLen) {
        Layer y = layers[l];
        int n = batch * seqLen, d = cfg.dim(), q = cfg.qDim(), kv = cfg.kvDim(), f = cfg.ffnDim();
        rmsnorm(x, y.attnNorm.data(), a.h1, a.r1, n);
        linear(a.h1, n, d, y.wq, y.bq, q, a.q);
        linear(a.h1, n, d, y.wk, y.bk, kv, a.k);
        linear(a.h1, n, d, y.wv, y.bv, kv, a.v);
        rope(a.q, n, seqLen, cfg.nHeads(), false);
        rope(a.k, n, seqLen, cfg.nKvHeads(), false);
        attention(a, batch, seqLen);
        // xMid = x + att · Woᵀ
        Kernels.nt(par, a.att, 0, y.wo.data(), 0, a.xMid, 0, d, n, d, q, false);
        addInPlace(x, a.xMid, n * d);
        rmsnorm(a.xMid, y.ffnNorm.data(), a.h2, a.r2, n);
        linear(a.h2, n, d, y.wg, null, f, a.g);
        linear(a.h2, n, d, y.wu, null, f, a.u);
        swiglu(a.g, a.u, a.act, n * f);
        Kernels.nt(par, a.act, 0, y.wd.data(), 0, out, 0, d, n, d, f, false);
        addInPlace(a.xMid, out, n * d);
    }

    private void linear(float[] x, int n, int in, Param w, Param bias, int out, float[] y) {
        Kernels.nt(par, x, 0, w.data(), 0, y, 0, out, n, out, in, false);
        if (bias != null) {
            float[] b = bias.data();
            rowChunks(n, (r0, r1) -> {
                for (int r = r0; r < r1; r++) Kernels.add(b, 0, y, r * out, out);
            });
        }
    }

    private interface RowRange {
        void run(int r0, int r1);
    }

    private void rowChunks(int rows, RowRange body) {
        final int chunk = 8;
        par.forEach((rows + chunk - 1) / chunk, t -> body.run(t * chunk, Math.min(rows, (t + 1) * chunk)));
    }

    private void addInPlace(float[] src, float[] dst, int len) {
        final int chunk = 1 << 14;
        par.forEach((len + chunk - 1) / chunk, t -> {
            int o = t * chunk;
            Kernels.add(src, o, dst, o, Math.min(chunk, len - o));
        });
    }

    /** y = w ⊙ x · r with r = 1/√(mean(x²)+eps), per row of length dim. */
    private void rmsnorm(float[] x, float[] w, float[] y, float[] r, int n) {
        int d = cfg.dim();
        float eps = cfg.normEps();
        rowChunks(n, (r0, r1) -> {
            for (int row = r0; row < r1; row++) {
                int o = row * d;
                float ss = Kernels.dot(x, o, x, o, d);
                float inv = (float) (1.0 / Math.sqrt(ss / d + eps));
                r[row] = inv;
                for (int j = 0; j < d; j++) y[o + j] = w[j] * (x[o + j] * inv);
            }
        });
    }

    private static float sigmoid(float z) {
        return (float) (1.0 / (1.0 + Math.exp(-z)));
    }

    private void swiglu(float[] g, float[] u, float[] out, int len) {
        final int chunk = 1 << 13;
        par.forEach((len + chunk - 1) / chunk, t -> {
            int e = Math.min(len, (t + 1) * chunk);
            for (int i = t * chunk; i < e; i++) out[i] = g[i] * sigmoid(g[i]) * u[i];
        });
    }

    private void ensureRope(int seqLen) {
        if (seqLen <= ropeT) return;
        int half = cfg.headDim() / 2;
        double[] inv = new double[half];
        for (int i = 0; i < half; i++) inv[i] = Math.pow(cfg.ropeTheta(), -2.0 * i / cfg.headDim());
        RopeScaling s = cfg.ropeScaling();
        if (s != null) {
            double lowWl = s.originalContextLength() / s.lowFreqFactor(), highWl = s.originalContextLength() / s.highFreqFactor();
            for (int i = 0; i < half; i++) {
                double wl = 2 * Math.PI / inv[i];
                if (wl < highWl) continue;
                if (wl > lowWl) {
                    inv[i] /= s.factor();
                } else {
                    double smooth = (s.originalContextLength() / wl - s.lowFreqFactor()) / (s.highFreqFactor() - s.lowFreqFactor());
                    inv[i] = (1 - smooth) * inv[i] / s.factor() + smooth * inv[i];
                }
            }
        }
        ropeCos = new float[seqLen * half];
        ropeSin = new float[seqLen * half];
        for (int p = 0; p < seqLen; p++) {
            for (int i = 0; i < half; i++) {
                double ang = p * inv[i];
                ropeCos[p * half + i] = (float) Math.cos(ang);
                ropeSin[p * half + i] = (float) Math.sin(ang);
            }
        }
        ropeT = seqLen;
    }

    /**
     * Rotates every head of every row in place; {@code inverse} applies the transposed rotation (the
     * backward pass). Row r is at position r % seqLen.
     */
    private void rope(float[] x, int n, int seqLen, int heads, boolean inverse) {
        int hd = cfg.headDim(), half = hd / 2, width = heads * hd;
        boolean interleaved = cfg.ropeStyle() == RopeStyle.INTERLEAVED;
        float sign = inverse ? -1f : 1f;
        rowChunks(n, (r0, r1) -> {
            for (int row = r0; row < r1; row++) {
                int pos = row % seqLen;
                int tab = pos * half;
                for (int h = 0; h < heads; h++) {
                    int o = row * width + h * hd;
                    for (int i = 0; i < half; i++) {
                        int i1 = interleaved ? o + 2 * i : o + i;
                        int i2 = interleaved ? i1 + 1 : i1 + half;
                        float c = ropeCos[tab + i], s = sign * ropeSin[tab + i];
                        float a = x[i1], b = x[i2];
                        x[i1] = a * c - b * s;
                        x[i2] = b * c + a * s;
                    }
                }
            }
        });
    }

    private void attention(Acts a, int batch, int seqLen) {
        int nh = cfg.nHeads(), nkv = cfg.nKvHeads(), group = nh / nkv, hd = cfg.headDim();
        int qDim = cfg.qDim(), kvDim = cfg.kvDim();
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
                        float sc = Kernels.dot(a.q, qo, a.k, (b * seqLen + s) * kvDim + kh * hd, hd) * scale;
                        a.probs[po + s] = sc;
                        max = Math.max(max, sc);
                    }
                    double sum = 0;
                    for (int s = 0; s <= t; s++) {
                        float e = (float) Math.exp(a.probs[po + s] - max);
                        a.probs[po + s] = e;
                        sum += e;
                    }
                    float inv = (float) (1.0 / sum);
                    Arrays.fill(a.att, qo, qo + hd, 0f);
                    for (int s = 0; s <= t; s++) {
                        float p = a.probs[po + s] * inv;
                        a.probs[po + s] = p;
                        Kernels.axpy(p, a.v, (b * seqLen + s) * kvDim + kh * hd, a.att, qo, hd);
                    }
                }
            }
        });
    }

    // ------------------------------------------------------------------------------------------ backward

    private void backward(float[] dLogits) {
        int n = wsB * wsT, d = cfg.dim(), vocab = cfg.vocabSize();
        Param head = output != null ? output : embd;
        // head: dW += dLogitsᵀ·hF ; dhF = dLogits·W
        linearBackward(dLogits, hF, null, n, d, vocab, head, null, dh, false);
        Arrays.fill(dx, 0f);
        rmsnormBackward(xIn[layers.length], outNorm, rF, dh, dx, n);
        for (int l = layers.length - 1; l >= 0; l--) {
            Acts a;
            if (checkpointActivations) {
                a = acts[0];
                layerForward(l, a, xIn[l], tB, wsB, wsT); // recompute (output goes to scratch)
            } else {
                a = acts[l];
            }
            layerBackward(l, a);
        }
        // embedding: dE[token] += dx[row]
        float[] ge = embd.grad();
        for (int i = 0; i < n; i++) Kernels.add(dx, i * d, ge, curTokens[i] * d, d);
    }

    /**
     * For y = x·Wᵀ (+ b) with dy [n, out]: W.grad += dyᵀ·x (x given transposed as xT [in, n] when not
     * null, else transposed here), b.grad += Σ rows of dy, dxOut (=, or += when accumulate) dy·W.
     */
    private void linearBackward(float[] dy, float[] x, float[] xT, int n, int in, int out, Param w, Param bias,
                                float[] dxOut, boolean accumulate) {
        Kernels.transpose(par, dy, 0, n, out, tA, 0);
        if (xT == null) {
            Kernels.transpose(par, x, 0, n, in, tB, 0);
            xT = tB;
        }
        Kernels.nt(par, tA, 0, xT, 0, w.grad(), 0, in, out, in, n, true);
        if (bias != null) {
            float[] gb = bias.grad();
            float[] ta = tA;
            par.forEach((out + 63) / 64, t -> {
                int e = Math.min(out, (t + 1) * 64);
                for (int o = t * 64; o < e; o++) {
                    float s = 0;
                    for (int r = 0; r < n; r++) s += ta[o * n + r];
                    gb[o] += s;
                }
            });
        }
        if (dxOut != null) {
            Kernels.transpose(par, w.data(), 0, out, in, wT, 0);
            Kernels.nt(par, dy, 0, wT, 0, dxOut, 0, in, n, in, out, accumulate);
        }
    }

    /** dxAcc += ∂/∂x of the RMSNorm given dy; w.grad += Σ dy ⊙ x·r. */
    private void rmsnormBackward(float[] x, Param w, float[] r, float[] dy, float[] dxAcc, int n) {
        int d = cfg.dim();
        float[] wd = w.data(), wg = w.grad();
        par.forEach((d + 63) / 64, t -> {
            int c1 = Math.min(d, (t + 1) * 64);
            for (int row = 0; row < n; row++) {
                int o = row * d;
                float inv = r[row];
                for (int j = t * 64; j < c1; j++) wg[j] += dy[o + j] * (x[o + j] * inv);
            }
        });
        rowChunks(n, (r0, r1) -> {
            for (int row = r0; row < r1; row++) {
                int o = row * d;
                float inv = r[row];
                double m = 0;
                for (int j = 0; j < d; j++) m += (double) dy[o + j] * wd[j] * x[o + j];
                float c = (float) (m * inv * inv / d);
                for (int j = 0; j < d; j++) dxAcc[o + j] += inv * (dy[o + j] * wd[j] - x[o + j] * c);
            }
        });
    }

    private void layerBackward(int l, Acts a) {
        Layer y = layers[l];
        int n = wsB * wsT, d = cfg.dim(), q = cfg.qDim(), kv = cfg.kvDim(), f = cfg.ffnDim();
        // MLP: out = act·Wdᵀ
        linearBackward(dx, a.act, null, n, f, d, y.wd, null, dact, false);
        final int chunk = 1 << 13, len = n * f;
        par.forEach((len + chunk - 1) / chunk, t -> {
            int e = Math.min(len, (t + 1) * chunk);
            for (int i = t * chunk; i < e; i++) {
                float g = a.g[i], s = sigmoid(g), da = dact[i];
                du[i] = da * g * s;
                dg[i] = da * a.u[i] * s * (1f + g * (1f - s));
            }
        });
        Kernels.transpose(par, a.h2, 0, n, d, tB, 0);
        linearBackward(dg, null, tB, n, d, f, y.wg, null, dh, false);
        linearBackward(du, null, tB, n, d, f, y.wu, null, dh, true);
        rmsnormBackward(a.xMid, y.ffnNorm, a.r2, dh, dx, n);
        // attention output projection
        linearBackward(dx, a.att, null, n, q, d, y.wo, null, datt, false);
        attentionBackward(a);
        rope(dq, n, wsT, cfg.nHeads(), true);
        rope(dk, n, wsT, cfg.nKvHeads(), true);
        Kernels.transpose(par, a.h1, 0, n, d, tB, 0);
        linearBackward(dq, null, tB, n, d, q, y.wq, y.bq, dh, false);
        linearBackward(dk, null, tB, n, d, kv, y.wk, y.bk, dh, true);
        linearBackward(dv, null, tB, n, d, kv, y.wv, y.bv, dh, true);
        rmsnormBackward(xIn[l], y.attnNorm, a.r1, dh, dx, n);
    }

    private void attentionBackward(Acts a) {
        int batch = wsB, seqLen = wsT;
        int nh = cfg.nHeads(), nkv = cfg.nKvHeads(), group = nh / nkv, hd = cfg.headDim();
        int qDim = cfg.qDim(), kvDim = cfg.kvDim();
        float scale = (float) (1.0 / Math.sqrt(hd));
        par.forEach(batch * nkv, task -> {
            int b = task / nkv, kh = task % nkv;
            float[] dp = new float[seqLen];
            for (int s = 0; s < seqLen; s++) {
                int ko = (b * seqLen + s) * kvDim + kh * hd;
                Arrays.fill(dk, ko, ko + hd, 0f);
                Arrays.fill(dv, ko, ko + hd, 0f);
            }
            for (int gi = 0; gi < group; gi++) {
                int h = kh * group + gi;
                for (int t = 0; t < seqLen; t++) {
                    int qo = (b * seqLen + t) * qDim + h * hd;
                    int po = ((b * nh + h) * seqLen + t) * seqLen;
                    double dot = 0;
                    for (int s = 0; s <= t; s++) {
                        int ko = (b * seqLen + s) * kvDim + kh * hd;
                        float p = a.probs[po + s];
                        float g = Kernels.dot(datt, qo, a.v, ko, hd);
                        dp[s] = g;
                        dot += (double) p * g;
                        Kernels.axpy(p, datt, qo, dv, ko, hd);
                    }
                    Arrays.fill(dq, qo, qo + hd, 0f);
                    for (int s = 0; s <= t; s++) {
                        int ko = (b * seqLen + s) * kvDim + kh * hd;
                        float ds = a.probs[po + s] * (dp[s] - (float) dot) * scale;
                        Kernels.axpy(ds, a.k, ko, dq, qo, hd);
                        Kernels.axpy(ds, a.q, qo, dk, ko, hd);
                    }
                }
            }
        });
    }
}
