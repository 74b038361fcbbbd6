package dev.lathe.train;

import dev.lathe.LatheException;
import dev.lathe.model.ModelConfig;
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
        float[] r1, h1, q, k, v, probs, att, xMid, r2, h2, g, u, sig, act;
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
    private float[] dx, dh, dq, dk, dv, datt, dg, du, dact, scratch, wT;
    private float[] ropeCos, ropeSin;
    private int ropeT = -1;
    private int[] curTokens;
    private int curB, curT;

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

    public boolean hasParam(String name) {
        return byName.containsKey(name);
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
        loss.prepare(tokens, targets, batch, seqLen);
        return loss.sum(logits, batch * seqLen, cfg.vocabSize(), targets, null, 0f);
    }

    /**
     * Forward, loss and backward: adds {@code gradScale · ∂(loss sum)/∂θ} into every parameter's gradient
     * and returns the summed loss over counted targets.
     */
    public double forwardBackward(int[] tokens, int[] targets, int batch, int seqLen, Loss loss, float gradScale) {
        runForward(tokens, batch, seqLen, true);
        int n = batch * seqLen;
        loss.prepare(tokens, targets, batch, seqLen);
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
        if (seqLen == wsT && batch <= wsB) return; // big enough: every buffer is used by its first rows
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
            a.sig = new float[n * f];
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
        scratch = new float[n * d];
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
        curB = batch;
        curT = seqLen;
        int n = batch * seqLen, d = cfg.dim();
        float[] x0 = xIn[0];
        Ops.embedding(tokens, n, embd.data(), d, x0);
        for (int l = 0; l < layers.length; l++) layerForward(l, actsFor(l, keep), xIn[l], xIn[l + 1], batch, seqLen);
        float[] xf = xIn[layers.length];
        rmsnorm(xf, outNorm.data(), hF, rF, n);
        Param head = output != null ? output : embd;
        linear(hF, n, d, head, null, cfg.vocabSize(), logits);
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
        Ops.attention(par, a.q, a.k, a.v, a.probs, a.att, batch, seqLen, cfg.nHeads(), cfg.nKvHeads(), cfg.headDim());
        // xMid = x + att · Woᵀ
        linear(a.att, n, q, y.wo, null, d, a.xMid);
        Ops.addInPlace(par, x, a.xMid, n * d);
        rmsnorm(a.xMid, y.ffnNorm.data(), a.h2, a.r2, n);
        linear(a.h2, n, d, y.wg, null, f, a.g);
        linear(a.h2, n, d, y.wu, null, f, a.u);
        Ops.swiglu(par, a.g, a.u, a.sig, a.act, n * f);
        linear(a.act, n, f, y.wd, null, d, out);
        Ops.addInPlace(par, a.xMid, out, n * d);
    }

    /** y[n,out] = x[n,in]·Wᵀ (+ b). */
    private void linear(float[] x, int n, int in, Param w, Param bias, int out, float[] y) {
        Kernels.transpose(par, w.data(), 0, out, in, wT, 0);
        Kernels.nn(par, x, 0, wT, 0, y, 0, out, n, out, in, false);
        if (bias != null) {
            float[] b = bias.data();
            par.forEach(n, r -> Kernels.add(b, 0, y, r * out, out));
        }
    }

    private void rmsnorm(float[] x, float[] w, float[] y, float[] r, int n) {
        Ops.rmsnorm(par, x, w, y, r, n, cfg.dim(), cfg.normEps());
    }

    private void rmsnormBackward(float[] x, Param w, float[] r, float[] dy, float[] dxAcc, int n) {
        Ops.rmsnormBackward(par, x, w.data(), r, dy, dxAcc, w.grad(), n, cfg.dim());
    }

    private void rope(float[] x, int n, int seqLen, int heads, boolean inverse) {
        Ops.rope(par, x, n, seqLen, heads, cfg.headDim(), cfg.ropeStyle() == RopeStyle.INTERLEAVED, ropeCos, ropeSin, inverse);
    }

    private void ensureRope(int seqLen) {
        if (seqLen <= ropeT) return;
        float[][] cs = Ops.ropeTables(cfg.headDim(), cfg.ropeTheta(), cfg.ropeScaling(), seqLen);
        ropeCos = cs[0];
        ropeSin = cs[1];
        ropeT = seqLen;
    }

    // ------------------------------------------------------------------------------------------ backward

    private void backward(float[] dLogits) {
        int n = curB * curT, d = cfg.dim(), vocab = cfg.vocabSize();
        Param head = output != null ? output : embd;
        // head: dW += dLogitsᵀ·hF ; dhF = dLogits·W
        linearBackward(dLogits, hF, n, d, vocab, head, null, dh, false);
        Arrays.fill(dx, 0f);
        rmsnormBackward(xIn[layers.length], outNorm, rF, dh, dx, n);
        for (int l = layers.length - 1; l >= 0; l--) {
            Acts a;
            if (checkpointActivations) {
                a = acts[0];
                layerForward(l, a, xIn[l], scratch, curB, curT); // recompute (output goes to scratch)
            } else {
                a = acts[l];
            }
            layerBackward(l, a);
        }
        // embedding: dE[token] += dx[row]
        Ops.embeddingBackward(curTokens, n, dx, d, embd.grad());
    }

    /**
     * For y = x·Wᵀ (+ b) with dy [n, out]: W.grad += dyᵀ·x, b.grad += Σ rows of dy, dxOut (=, or += when
     * accumulate) dy·W.
     */
    private void linearBackward(float[] dy, float[] x, int n, int in, int out, Param w, Param bias,
                                float[] dxOut, boolean accumulate) {
        Kernels.tn(par, dy, 0, x, 0, w.grad(), 0, in, out, in, n, true);
        if (bias != null) {
            float[] gb = bias.grad();
            for (int r = 0; r < n; r++) Kernels.add(dy, r * out, gb, 0, out);
        }
        if (dxOut != null) Kernels.nn(par, dy, 0, w.data(), 0, dxOut, 0, in, n, in, out, accumulate);
    }

    private void layerBackward(int l, Acts a) {
        Layer y = layers[l];
        int n = curB * curT, d = cfg.dim(), q = cfg.qDim(), kv = cfg.kvDim(), f = cfg.ffnDim();
        // MLP: out = act·Wdᵀ
        linearBackward(dx, a.act, n, f, d, y.wd, null, dact, false);
        Ops.swigluBackward(par, a.g, a.u, a.sig, dact, dg, du, n * f);
        linearBackward(dg, a.h2, n, d, f, y.wg, null, dh, false);
        linearBackward(du, a.h2, n, d, f, y.wu, null, dh, true);
        rmsnormBackward(a.xMid, y.ffnNorm, a.r2, dh, dx, n);
        // attention output projection
        linearBackward(dx, a.att, n, q, d, y.wo, null, datt, false);
        Ops.attentionBackward(par, a.q, a.k, a.v, a.probs, datt, dq, dk, dv, curB, curT, cfg.nHeads(), cfg.nKvHeads(), cfg.headDim());
        rope(dq, n, curT, cfg.nHeads(), true);
        rope(dk, n, curT, cfg.nKvHeads(), true);
        linearBackward(dq, a.h1, n, d, q, y.wq, y.bq, dh, false);
        linearBackward(dk, a.h1, n, d, kv, y.wk, y.bk, dh, true);
        linearBackward(dv, a.h1, n, d, kv, y.wv, y.bv, dh, true);
        rmsnormBackward(xIn[l], y.attnNorm, a.r1, dh, dx, n);
    }

}
