package dev.lathe.model;

import dev.lathe.LatheException;
import dev.lathe.tensor.BlockCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;
import dev.lathe.tensor.VectorKernels;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A LLaMA-family decoder (Llama 2/3, Mistral, Qwen2) built from any {@link WeightSource}: RMSNorm, RoPE
 * (interleaved or half style, Llama 3 scaling, GGUF {@code rope_freqs}), grouped-query attention with a KV
 * cache, optional q/k/v biases, SwiGLU MLP, final norm and the output head (or the tied embedding).
 * Weights stay as stored (mapped, quantized or not); only norm weights and biases are read into arrays.
 *
 * <p>Use: {@code Session s = model.newSession(n); float[] logits = model.forward(s, tokens, 0, k, false);}
 * then decode with {@code forward(s, new int[]{t}, 0, 1, false)}. A forward call appends its tokens to the
 * session at positions {@code s.length() ..}. The model is safe to share between threads; a session is not.
 */
public final class LlamaModel {
    private static final VectorSpecies<Float> F = VectorKernels.F;
    private static final int L = F.length();
    private static final VectorSpecies<Short> S = L == 16 ? ShortVector.SPECIES_256 : L == 8 ? ShortVector.SPECIES_128 : ShortVector.SPECIES_64;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;

    /** Weights of one decoder block. */
    public record Layer(float[] attnNorm, Linear wq, Linear wk, Linear wv, Linear wo, float[] bq, float[] bk, float[] bv,
                        float[] ffnNorm, Linear gate, Linear up, Linear down) {}

    /** Precision of the KV cache. */
    public enum KvType { F32, F16 }

    /** Receives the residual stream after each decoder block: {@code x} holds {@code rows} rows of {@code dim}. */
    @FunctionalInterface
    public interface LayerHook {
        void afterLayer(int layer, int firstPosition, float[] x, int rows, int dim);
    }

    private final Path path;
    private final ModelConfig config;
    private final Parallel pool;
    private final Tensor embedding;
    private final BlockCodec embeddingCodec;
    private final long embeddingRowBytes;
    private final Layer[] layers;
    private final float[] outputNorm;
    private final Linear output;
    private final int vocab;
    private final boolean tied;
    private final double[] invFreq;
    private volatile float[][] ropeTable = {new float[0], new float[0]};
    private volatile int ropePositions;

    private LlamaModel(Path path, ModelConfig config, Parallel pool, Tensor embedding, Layer[] layers, float[] outputNorm,
                       Linear output, boolean tied, double[] invFreq) {
        this.path = path;
        this.config = config;
        this.pool = pool;
        this.embedding = embedding;
        this.embeddingCodec = BlockCodecs.get(embedding.type());
        this.embeddingRowBytes = embedding.rowBytes();
        this.layers = layers;
        this.outputNorm = outputNorm;
        this.output = output;
        this.vocab = output.outFeatures();
        this.tied = tied;
        this.invFreq = invFreq;
    }

    /** Builds the model with the shared thread pool. The source must stay open while the model is used. */
    public static LlamaModel load(WeightSource source) {
        return load(source, Parallel.common());
    }

    public static LlamaModel load(WeightSource source, Parallel pool) {
        // the source decides (it may store a layer format that has no tensor type, e.g. packed integers or sparse
        // matrices), from the name alone: its tensor() may decode the whole matrix
        return build(source, pool, name -> source.linear(name, pool));
    }

    /** Makes the {@link Linear} for a stored weight matrix; lets other packages plug in their own layers. */
    @FunctionalInterface
    public interface LinearFactory {
        Linear make(Tensor weight, Parallel pool);
    }

    /**
     * Builds the model with {@code factory} making every matrix layer (q, k, v, o, gate, up, down and the
     * head, tied or not); the factory's layer must have the weight's shape.
     */
    public static LlamaModel load(WeightSource source, Parallel pool, LinearFactory factory) {
        return build(source, pool, name -> factory.make(source.tensor(name), pool));
    }

    private static LlamaModel build(WeightSource source, Parallel pool, java.util.function.Function<String, Linear> maker) {
        ModelConfig c = source.config();
        Path p = source.path();
        int dim = c.dim(), qDim = c.qDim(), kvDim = c.kvDim(), ffn = c.ffnDim();
        Tensor emb = source.tensor(TensorNames.TOKEN_EMBD);
        if (emb.dims() != 2 || emb.cols() != dim || emb.rows() < 1) {
            throw new LatheException(p, "tensor " + TensorNames.TOKEN_EMBD + " has shape " + Arrays.toString(emb.shape()) + ", expected [vocab, " + dim + "]");
        }
        if (!BlockCodecs.supports(emb.type())) throw new LatheException(p, "tensor " + emb.name() + " has unsupported type " + emb.type());
        Layer[] layers = new Layer[c.nLayers()];
        for (int l = 0; l < layers.length; l++) {
            float[] an = vector(source, TensorNames.layer(l, "attn_norm.weight"), dim);
            Linear wq = linear(source, maker, TensorNames.layer(l, "attn_q.weight"), qDim, dim);
            Linear wk = linear(source, maker, TensorNames.layer(l, "attn_k.weight"), kvDim, dim);
            Linear wv = linear(source, maker, TensorNames.layer(l, "attn_v.weight"), kvDim, dim);
            Linear wo = linear(source, maker, TensorNames.layer(l, "attn_output.weight"), dim, qDim);
            float[] bq = null, bk = null, bv = null;
            if (c.qkvBias() || source.has(TensorNames.layer(l, "attn_q.bias"))) {
                bq = vector(source, TensorNames.layer(l, "attn_q.bias"), qDim);
                bk = vector(source, TensorNames.layer(l, "attn_k.bias"), kvDim);
                bv = vector(source, TensorNames.layer(l, "attn_v.bias"), kvDim);
            }
            float[] fn = vector(source, TensorNames.layer(l, "ffn_norm.weight"), dim);
            Linear gate = linear(source, maker, TensorNames.layer(l, "ffn_gate.weight"), ffn, dim);
            Linear up = linear(source, maker, TensorNames.layer(l, "ffn_up.weight"), ffn, dim);
            Linear down = linear(source, maker, TensorNames.layer(l, "ffn_down.weight"), dim, ffn);
            layers[l] = new Layer(an, wq, wk, wv, wo, bq, bk, bv, fn, gate, up, down);
        }
        float[] on = vector(source, TensorNames.OUTPUT_NORM, dim);
        Linear out;
        if (source.has(TensorNames.OUTPUT)) {
            long[] o = source.shape(TensorNames.OUTPUT);
            if (o.length != 2 || o[1] != dim || o[0] < 1 || o[0] > Integer.MAX_VALUE) {
                throw new LatheException(p, "tensor " + TensorNames.OUTPUT + " has shape " + Arrays.toString(o) + ", expected [vocab, " + dim + "]");
            }
            out = linear(source, maker, TensorNames.OUTPUT, (int) o[0], dim);
        } else {
            // no output.weight: the head is the token embedding (tied), as llama.cpp does
            if (emb.rows() > Integer.MAX_VALUE) throw new LatheException(p, "tensor " + TensorNames.TOKEN_EMBD + " has too many rows: " + emb.rows());
            out = linear(source, maker, TensorNames.TOKEN_EMBD, (int) emb.rows(), dim);
        }
        if (out.outFeatures() != emb.rows()) {
            throw new LatheException(p, "output head has " + out.outFeatures() + " rows but the embedding has " + emb.rows());
        }
        double[] inv = ropeFrequencies(source, c);
        return new LlamaModel(p, c, pool, emb, layers, on, out, !source.has(TensorNames.OUTPUT), inv);
    }

    private static Linear linear(WeightSource s, java.util.function.Function<String, Linear> maker, String name, int out, int in) {
        long[] shape = s.shape(name);
        if (shape.length != 2 || shape[0] != out || shape[1] != in) {
            throw new LatheException(s.path(), "tensor " + name + " has shape " + Arrays.toString(shape) + ", expected [" + out + ", " + in + "]");
        }
        Linear l;
        try {
            l = maker.apply(name);
        } catch (LatheException e) {
            throw e.file() != null ? e : new LatheException(s.path(), e.getMessage(), e);
        }
        if (l == null || l.outFeatures() != out || l.inFeatures() != in) {
            throw new LatheException(s.path(), "layer made for " + name + " does not have its shape " + Arrays.toString(shape));
        }
        return l;
    }

    private static float[] vector(WeightSource s, String name, int n) {
        Tensor t = s.tensor(name);
        if (t.numElements() != n) {
            throw new LatheException(s.path(), "tensor " + name + " has shape " + Arrays.toString(t.shape()) + ", expected [" + n + "]");
        }
        float[] v;
        try {
            v = TensorOps.toFloats(t);
        } catch (LatheException e) {
            throw new LatheException(s.path(), e.getMessage(), e);
        }
        for (float f : v) if (!Float.isFinite(f)) throw new LatheException(s.path(), "tensor " + name + " contains NaN or Inf");
        return v;
    }

    /**
     * RoPE inverse frequencies per rotated pair of {@code source}'s model (theta, Llama 3 scaling, GGUF
     * {@code rope_freqs.weight}), exactly as the engine uses them; for tools that re-run a decoder block
     * outside the engine (calibration in dev.lathe.compress).
     */
    public static double[] ropeInverseFrequencies(WeightSource source) {
        return ropeFrequencies(source, source.config());
    }

    /** Inverse frequencies per rotated pair, with Llama 3 scaling or a GGUF {@code rope_freqs.weight}. */
    static double[] ropeFrequencies(WeightSource s, ModelConfig c) {
        int half = c.headDim() / 2;
        double[] inv = new double[half];
        for (int i = 0; i < half; i++) inv[i] = Math.pow(c.ropeTheta(), -2.0 * i / c.headDim());
        if (s.has("rope_freqs.weight")) {
            Tensor t = s.tensor("rope_freqs.weight");
            if (t.numElements() != half) {
                throw new LatheException(s.path(), "tensor rope_freqs.weight has " + t.numElements() + " values, expected " + half);
            }
            float[] f = TensorOps.toFloats(t);
            for (int i = 0; i < half; i++) {
                if (!(f[i] > 0) || !Float.isFinite(f[i])) throw new LatheException(s.path(), "rope_freqs.weight has invalid factor " + f[i]);
                inv[i] /= f[i];
            }
        } else if (c.ropeScaling() != null) {
            RopeScaling r = c.ropeScaling();
            if (!(r.factor() > 0) || !(r.highFreqFactor() > r.lowFreqFactor()) || r.originalContextLength() <= 0) {
                throw new LatheException(s.path(), "invalid rope scaling " + r);
            }
            double lowWave = r.originalContextLength() / (double) r.lowFreqFactor();
            double highWave = r.originalContextLength() / (double) r.highFreqFactor();
            for (int i = 0; i < half; i++) {
                double wave = 2 * Math.PI / inv[i];
                if (wave < highWave) continue;
                if (wave > lowWave) {
                    inv[i] = inv[i] / r.factor();
                } else {
                    double smooth = (r.originalContextLength() / wave - r.lowFreqFactor()) / (r.highFreqFactor() - r.lowFreqFactor());
                    inv[i] = (1 - smooth) * inv[i] / r.factor() + smooth * inv[i];
                }
            }
        }
        return inv;
    }

    public ModelConfig config() {
        return config;
    }

    public Path path() {
        return path;
    }

    public int vocabSize() {
        return vocab;
    }

    public Layer layer(int i) {
        return layers[i];
    }

    public Linear output() {
        return output;
    }

    /** True when the output head is the token embedding. */
    public boolean tiedHead() {
        return tied;
    }

    public Parallel pool() {
        return pool;
    }

    /** Bytes of all weights as stored (norm weights and biases counted as F32). */
    public long storageBytes() {
        long b = embedding.data().byteSize() + 4L * outputNorm.length;
        for (Layer l : layers) {
            b += l.wq.storageBytes() + l.wk.storageBytes() + l.wv.storageBytes() + l.wo.storageBytes()
                    + l.gate.storageBytes() + l.up.storageBytes() + l.down.storageBytes() + 8L * l.attnNorm.length;
            if (l.bq != null) b += 4L * (l.bq.length + l.bk.length + l.bv.length);
        }
        if (!tiedHead()) b += output.storageBytes();
        return b;
    }

    public Session newSession(int maxTokens) {
        return new Session(maxTokens, KvType.F32, 512);
    }

    public Session newSession(int maxTokens, KvType kvType) {
        return new Session(maxTokens, kvType, 512);
    }

    /** A session whose forward calls process at most {@code maxBatch} tokens at a time (larger calls are split). */
    public Session newSession(int maxTokens, KvType kvType, int maxBatch) {
        return new Session(maxTokens, kvType, maxBatch);
    }

    private void ensureRope(int positions) {
        if (positions <= ropePositions) return;
        synchronized (this) {
            if (positions <= ropePositions) return;
            int half = invFreq.length;
            int n = Math.max(positions, Math.min(2 * ropePositions, Math.max(positions, config.contextLength())));
            float[] cos = new float[n * half], sin = new float[n * half];
            for (int p = 0; p < n; p++) {
                for (int i = 0; i < half; i++) {
                    double a = p * invFreq[i];
                    cos[p * half + i] = (float) Math.cos(a);
                    sin[p * half + i] = (float) Math.sin(a);
                }
            }
            ropeTable = new float[][]{cos, sin};
            ropePositions = n;
        }
    }

    /** Per-sequence state: the KV cache, scratch buffers and the number of tokens processed so far. */
    public final class Session {
        private final int maxTokens;
        private final KvType kvType;
        private final int maxBatch;
        private final float[][] kf, vf;
        private final MemorySegment[] kh, vh;
        private final float[] x, xb, q, k, v, att, o, g, u;
        private final float[] lastLogits;
        private final float[][] scores;
        private int length;
        private LayerHook hook;

        private Session(int maxTokens, KvType kvType, int maxBatch) {
            if (maxTokens < 1) throw new IllegalArgumentException("maxTokens must be >= 1, got " + maxTokens);
            if (maxBatch < 1) throw new IllegalArgumentException("maxBatch must be >= 1, got " + maxBatch);
            this.maxTokens = maxTokens;
            this.kvType = kvType;
            this.maxBatch = Math.min(maxBatch, maxTokens);
            int kvDim = config.kvDim(), nl = config.nLayers();
            long cells = (long) maxTokens * kvDim;
            if (cells * (kvType == KvType.F16 ? 2 : 1) > Integer.MAX_VALUE - 16) {
                throw new IllegalArgumentException("KV cache of " + maxTokens + " tokens is too large for one layer array");
            }
            if (kvType == KvType.F32) {
                kf = new float[nl][(int) cells];
                vf = new float[nl][(int) cells];
                kh = vh = null;
            } else {
                kf = vf = null;
                kh = new MemorySegment[nl];
                vh = new MemorySegment[nl];
                for (int l = 0; l < nl; l++) {
                    kh[l] = MemorySegment.ofArray(new byte[(int) (cells * 2)]);
                    vh[l] = MemorySegment.ofArray(new byte[(int) (cells * 2)]);
                }
            }
            int b = this.maxBatch;
            x = new float[b * config.dim()];
            xb = new float[b * Math.max(config.dim(), config.qDim())];
            q = new float[b * config.qDim()];
            k = new float[b * kvDim];
            v = new float[b * kvDim];
            att = new float[b * config.qDim()];
            o = new float[b * config.dim()];
            g = new float[b * config.ffnDim()];
            u = new float[b * config.ffnDim()];
            lastLogits = new float[vocab];
            scores = new float[pool.threads()][maxTokens];
            ensureRope(maxTokens);
        }

        public LlamaModel model() {
            return LlamaModel.this;
        }

        /** Number of tokens in the cache (the position of the next token). */
        public int length() {
            return length;
        }

        public int maxTokens() {
            return maxTokens;
        }

        public KvType kvType() {
            return kvType;
        }

        /** Forgets everything (positions restart at 0). */
        public void reset() {
            length = 0;
        }

        /** Keeps the first {@code n} tokens of the cache. */
        public void truncate(int n) {
            if (n < 0 || n > length) throw new IllegalArgumentException("cannot truncate " + length + " tokens to " + n);
            length = n;
        }

        /** Sets (or clears, with null) the per-layer hidden-state callback. */
        public void setHook(LayerHook hook) {
            this.hook = hook;
        }
    }

    /** Decodes one token; returns the next-token logits (the session's buffer, overwritten by the next call). */
    public float[] forward(Session s, int token) {
        return forward(s, new int[]{token}, 0, 1, false);
    }

    /**
     * Runs {@code tokens[start .. start+count)} at positions {@code s.length() ..} (batched: every weight
     * matrix is multiplied with up to {@code maxBatch} rows at once, causal attention over the cache) and
     * appends them to the cache. Returns the logits of all {@code count} positions ({@code [count, vocab]},
     * a new array) when {@code allLogits}, else those of the last position (the session's buffer,
     * overwritten by the next call).
     */
    public float[] forward(Session s, int[] tokens, int start, int count, boolean allLogits) {
        if (s.model() != this) throw new IllegalArgumentException("session belongs to another model");
        if (count < 1) throw new IllegalArgumentException("count must be >= 1, got " + count);
        if (start < 0 || start + count > tokens.length) throw new IllegalArgumentException("token range out of bounds");
        if (s.length + count > s.maxTokens) {
            throw new IllegalArgumentException("session holds " + s.maxTokens + " tokens; cannot add " + count + " to " + s.length);
        }
        for (int i = start; i < start + count; i++) {
            if (tokens[i] < 0 || tokens[i] >= embedding.rows()) throw new IllegalArgumentException("token id " + tokens[i] + " out of range [0, " + embedding.rows() + ")");
        }
        float[] result = allLogits ? new float[count * vocab] : s.lastLogits;
        float[] tmp = null;
        for (int done = 0; done < count; ) {
            int nb = Math.min(s.maxBatch, count - done);
            boolean last = done + nb == count;
            forwardBatch(s, tokens, start + done, nb);
            if (allLogits) {
                finalNorm(s, 0, nb);
                if (nb == count) {
                    output.forward(s.xb, result, nb);
                } else {
                    if (tmp == null || tmp.length < nb * vocab) tmp = new float[nb * vocab];
                    output.forward(s.xb, tmp, nb);
                    System.arraycopy(tmp, 0, result, done * vocab, nb * vocab);
                }
            } else if (last) {
                finalNorm(s, nb - 1, 1);
                output.forward(s.xb, result, 1);
            }
            done += nb;
        }
        return result;
    }

    /** RMSNorm of rows {@code [from, from+n)} of x into rows {@code [0, n)} of xb with the final norm. */
    private void finalNorm(Session s, int from, int n) {
        int dim = config.dim();
        for (int r = 0; r < n; r++) rmsNorm(s.x, (from + r) * dim, outputNorm, s.xb, r * dim, dim, config.normEps());
    }

    private void forwardBatch(Session s, int[] tokens, int off, int n) {
        ModelConfig c = config;
        int dim = c.dim(), qDim = c.qDim(), kvDim = c.kvDim(), ffn = c.ffnDim();
        int pos0 = s.length;
        float[] x = s.x;
        for (int t = 0; t < n; t++) {
            embeddingCodec.dequantize(embedding.data(), tokens[off + t] * embeddingRowBytes, x, t * dim, dim);
        }
        float eps = c.normEps();
        for (int l = 0; l < layers.length; l++) {
            Layer ly = layers[l];
            rmsNormRows(x, ly.attnNorm, s.xb, n, dim, eps);
            ly.wq.forward(s.xb, s.q, n);
            ly.wk.forward(s.xb, s.k, n);
            ly.wv.forward(s.xb, s.v, n);
            if (ly.bq != null) {
                addBias(s.q, ly.bq, n);
                addBias(s.k, ly.bk, n);
                addBias(s.v, ly.bv, n);
            }
            rope(s.q, n, c.nHeads(), pos0);
            rope(s.k, n, c.nKvHeads(), pos0);
            storeKv(s, l, pos0, n);
            attention(s, l, pos0, n);
            ly.wo.forward(s.att, s.o, n);
            add(x, s.o, n * dim);
            rmsNormRows(x, ly.ffnNorm, s.xb, n, dim, eps);
            ly.gate.forward(s.xb, s.g, n);
            ly.up.forward(s.xb, s.u, n);
            swiglu(s.g, s.u, n * ffn);
            ly.down.forward(s.g, s.o, n);
            add(x, s.o, n * dim);
            if (s.hook != null) s.hook.afterLayer(l, pos0, x, n, dim);
        }
        s.length = pos0 + n;
    }

    private void rmsNormRows(float[] x, float[] w, float[] out, int n, int dim, float eps) {
        if (n == 1) {
            rmsNorm(x, 0, w, out, 0, dim, eps);
            return;
        }
        pool.forRange(n, Math.max(1, 16384 / dim), (worker, from, to) -> {
            for (int r = from; r < to; r++) rmsNorm(x, r * dim, w, out, r * dim, dim, eps);
        });
    }

    /** llama.cpp's rms_norm (double sum of squares, float scale) followed by the weight. */
    static void rmsNorm(float[] x, int xo, float[] w, float[] out, int oo, int dim, float eps) {
        double ss = 0;
        int i = 0;
        for (; i + L <= dim; i += L) {
            FloatVector v = FloatVector.fromArray(F, x, xo + i);
            ss += VecMath.sum(v.mul(v));
        }
        for (; i < dim; i++) ss += x[xo + i] * x[xo + i];
        float scale = (float) (1.0 / Math.sqrt((float) (ss / dim) + eps));
        i = 0;
        for (; i + L <= dim; i += L) {
            FloatVector.fromArray(F, x, xo + i).mul(scale).mul(FloatVector.fromArray(F, w, i)).intoArray(out, oo + i);
        }
        for (; i < dim; i++) out[oo + i] = (x[xo + i] * scale) * w[i];
    }

    private static void addBias(float[] y, float[] b, int n) {
        int d = b.length;
        for (int r = 0; r < n; r++) {
            int o = r * d;
            for (int i = 0; i < d; i++) y[o + i] += b[i];
        }
    }

    private static void add(float[] x, float[] y, int n) {
        int i = 0;
        for (; i + L <= n; i += L) FloatVector.fromArray(F, x, i).add(FloatVector.fromArray(F, y, i)).intoArray(x, i);
        for (; i < n; i++) x[i] += y[i];
    }

    /** g = silu(g) * u. */
    private void swiglu(float[] g, float[] u, int n) {
        if (n < 65536) {
            swigluRange(g, u, 0, n);
            return;
        }
        int chunk = 16384;
        pool.forRange((n + chunk - 1) / chunk, 1, (w, from, to) -> swigluRange(g, u, from * chunk, Math.min(n, to * chunk)));
    }

    private static void swigluRange(float[] g, float[] u, int from, int to) {
        int i = from;
        for (; i + L <= to; i += L) {
            FloatVector gv = FloatVector.fromArray(F, g, i);
            FloatVector sig = VecMath.exp(gv.neg()).add(1f);
            gv.div(sig).mul(FloatVector.fromArray(F, u, i)).intoArray(g, i);
        }
        for (; i < to; i++) g[i] = g[i] / (VecMath.exp(-g[i]) + 1f) * u[i];
    }

    private void rope(float[] a, int n, int heads, int pos0) {
        int hd = config.headDim(), half = hd / 2;
        float[][] tab = ropeTable;
        float[] cos = tab[0], sin = tab[1];
        boolean interleaved = config.ropeStyle() == RopeStyle.INTERLEAVED;
        int rowLen = heads * hd;
        for (int t = 0; t < n; t++) {
            int co = (pos0 + t) * half;
            for (int h = 0; h < heads; h++) {
                int base = t * rowLen + h * hd;
                if (interleaved) {
                    for (int i = 0; i < half; i++) {
                        float c = cos[co + i], s = sin[co + i];
                        float x0 = a[base + 2 * i], x1 = a[base + 2 * i + 1];
                        a[base + 2 * i] = x0 * c - x1 * s;
                        a[base + 2 * i + 1] = x0 * s + x1 * c;
                    }
                } else {
                    for (int i = 0; i < half; i++) {
                        float c = cos[co + i], s = sin[co + i];
                        float x0 = a[base + i], x1 = a[base + i + half];
                        a[base + i] = x0 * c - x1 * s;
                        a[base + i + half] = x0 * s + x1 * c;
                    }
                }
            }
        }
    }

    private void storeKv(Session s, int l, int pos0, int n) {
        int kvDim = config.kvDim();
        if (s.kvType == KvType.F32) {
            System.arraycopy(s.k, 0, s.kf[l], pos0 * kvDim, n * kvDim);
            System.arraycopy(s.v, 0, s.vf[l], pos0 * kvDim, n * kvDim);
        } else {
            MemorySegment kh = s.kh[l], vh = s.vh[l];
            long base = 2L * pos0 * kvDim;
            for (int i = 0; i < n * kvDim; i++) {
                kh.set(Tensor.I16_LE, base + 2L * i, Float.floatToFloat16(s.k[i]));
                vh.set(Tensor.I16_LE, base + 2L * i, Float.floatToFloat16(s.v[i]));
            }
        }
    }

    /** Causal attention of the n new queries over the cache (positions 0 .. pos0+t for query t). */
    private void attention(Session s, int l, int pos0, int n) {
        ModelConfig c = config;
        int nh = c.nHeads(), hd = c.headDim(), kvDim = c.kvDim(), qDim = c.qDim();
        int group = nh / c.nKvHeads();
        float scale = (float) (1.0 / Math.sqrt(hd));
        int tasks = n * nh;
        long work = (long) (pos0 + n) * hd * 2;
        int minChunk = (int) Math.max(1, Math.min(tasks, 16384 / Math.max(1, work)));
        pool.forRange(tasks, minChunk, (worker, from, to) -> {
            float[] sc = s.scores[worker];
            for (int task = from; task < to; task++) {
                int t = task / nh, h = task % nh;
                int len = pos0 + t + 1;
                int qo = t * qDim + h * hd;
                int kvo = (h / group) * hd;
                int oo = t * qDim + h * hd;
                if (s.kvType == KvType.F32) {
                    float[] kc = s.kf[l];
                    for (int j = 0; j < len; j++) sc[j] = DenseLinear.dot(s.q, qo, kc, j * kvDim + kvo, hd) * scale;
                } else {
                    MemorySegment kc = s.kh[l];
                    for (int j = 0; j < len; j++) sc[j] = VectorKernels.dotF16(kc, 2L * (j * kvDim + kvo), s.q, qo, hd) * scale;
                }
                softmax(sc, len);
                Arrays.fill(s.att, oo, oo + hd, 0f);
                if (s.kvType == KvType.F32) {
                    float[] vc = s.vf[l];
                    for (int j = 0; j < len; j++) axpy(sc[j], vc, j * kvDim + kvo, s.att, oo, hd);
                } else {
                    MemorySegment vc = s.vh[l];
                    for (int j = 0; j < len; j++) axpyF16(sc[j], vc, 2L * (j * kvDim + kvo), s.att, oo, hd);
                }
            }
        });
    }

    /** In-place softmax of a[0..n): float max subtraction, exp, double sum, scale by 1/sum (as ggml does). */
    static void softmax(float[] a, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, a[i]);
        double sum = 0;
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector e = VecMath.exp(FloatVector.fromArray(F, a, i).sub(max));
            e.intoArray(a, i);
            sum += VecMath.sum(e);
        }
        for (; i < n; i++) {
            float e = VecMath.exp(a[i] - max);
            a[i] = e;
            sum += e;
        }
        float inv = (float) (1.0 / sum);
        i = 0;
        for (; i + L <= n; i += L) FloatVector.fromArray(F, a, i).mul(inv).intoArray(a, i);
        for (; i < n; i++) a[i] *= inv;
    }

    private static void axpy(float a, float[] x, int xo, float[] y, int yo, int n) {
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector.fromArray(F, x, xo + i).fma(FloatVector.broadcast(F, a), FloatVector.fromArray(F, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] += a * x[xo + i];
    }

    private static void axpyF16(float a, MemorySegment v, long off, float[] y, int yo, int n) {
        int i = 0;
        FloatVector av = FloatVector.broadcast(F, a);
        for (; i + L <= n; i += L) {
            IntVector h = (IntVector) ShortVector.fromMemorySegment(S, v, off + 2L * i, ByteOrder.LITTLE_ENDIAN)
                    .convertShape(VectorOperators.ZERO_EXTEND_S2I, I, 0);
            VectorKernels.halfToFloat(h).fma(av, FloatVector.fromArray(F, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] += a * Float.float16ToFloat(v.get(Tensor.I16_LE, off + 2L * i));
    }

    /** Dequantizes one embedding row (for tools that need the raw vector of a token). */
    public float[] embeddingRow(int token) {
        int dim = config.dim();
        float[] r = new float[dim];
        embeddingCodec.dequantize(embedding.data(), token * embeddingRowBytes, r, 0, dim);
        return r;
    }

    @Override
    public String toString() {
        return "LlamaModel(" + config.arch() + ", " + config.nLayers() + " layers, dim " + config.dim() + ", vocab " + vocab
                + ", " + output.typeName() + " head)";
    }
}
