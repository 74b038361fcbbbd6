package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.model.Linear;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.Parallel;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;

import java.util.Arrays;

/**
 * The weights of one decoder block as float arrays that compression methods change in place: the seven
 * projections ({@code [out, in]} row-major), the two RMSNorm weights and the optional q/k/v biases.
 */
public final class BlockWeights {
    private final int layer;
    private final ModelConfig config;
    public final float[] attnNorm, ffnNorm;
    public final float[] bq, bk, bv;
    private final float[][] w = new float[Proj.values().length][];
    private final Linear[] linears = new Linear[Proj.values().length];
    private int version;

    private BlockWeights(int layer, ModelConfig config, float[] attnNorm, float[] ffnNorm, float[] bq, float[] bk, float[] bv) {
        this.layer = layer;
        this.config = config;
        this.attnNorm = attnNorm;
        this.ffnNorm = ffnNorm;
        this.bq = bq;
        this.bk = bk;
        this.bv = bv;
    }

    /** Reads (dequantizes) block {@code layer} of {@code src}; throws on a wrong shape or NaN/Inf. */
    public static BlockWeights load(WeightSource src, int layer) {
        ModelConfig c = src.config();
        float[] an = vector(src, TensorNames.layer(layer, "attn_norm.weight"), c.dim());
        float[] fn = vector(src, TensorNames.layer(layer, "ffn_norm.weight"), c.dim());
        float[] bq = null, bk = null, bv = null;
        if (src.has(TensorNames.layer(layer, "attn_q.bias"))) {
            bq = vector(src, TensorNames.layer(layer, "attn_q.bias"), c.qDim());
            bk = vector(src, TensorNames.layer(layer, "attn_k.bias"), c.kvDim());
            bv = vector(src, TensorNames.layer(layer, "attn_v.bias"), c.kvDim());
        }
        BlockWeights b = new BlockWeights(layer, c, an, fn, bq, bk, bv);
        for (Proj p : Proj.values()) {
            String name = p.tensorName(layer);
            Tensor t = src.tensor(name);
            if (t.dims() != 2 || t.rows() != b.rows(p) || t.cols() != b.cols(p)) {
                throw new LatheException(src.path(), "tensor " + name + " has shape " + Arrays.toString(t.shape())
                        + ", expected [" + b.rows(p) + ", " + b.cols(p) + "]");
            }
            float[] v = TensorOps.toFloats(t);
            checkFinite(src, name, v);
            b.w[p.ordinal()] = v;
        }
        return b;
    }

    static float[] vector(WeightSource src, String name, int n) {
        Tensor t = src.tensor(name);
        if (t.numElements() != n) throw new LatheException(src.path(), "tensor " + name + " has " + t.numElements() + " values, expected " + n);
        float[] v = TensorOps.toFloats(t);
        checkFinite(src, name, v);
        return v;
    }

    static void checkFinite(WeightSource src, String name, float[] v) {
        for (float f : v) if (!Float.isFinite(f)) throw new LatheException(src.path(), "tensor " + name + " contains NaN or Inf");
    }

    public int layer() {
        return layer;
    }

    public ModelConfig config() {
        return config;
    }

    public int rows(Proj p) {
        return switch (p) {
            case Q -> config.qDim();
            case K, V -> config.kvDim();
            case O, DOWN -> config.dim();
            case GATE, UP -> config.ffnDim();
        };
    }

    public int cols(Proj p) {
        return switch (p) {
            case Q, K, V, GATE, UP -> config.dim();
            case O -> config.qDim();
            case DOWN -> config.ffnDim();
        };
    }

    /** The live weight array of {@code p} (call {@link #changed} after writing into it). */
    public float[] weight(Proj p) {
        return w[p.ordinal()];
    }

    /** Replaces the weights of {@code p}. */
    public void set(Proj p, float[] values) {
        if (values.length != rows(p) * cols(p)) throw new IllegalArgumentException(p + ": " + values.length + " values");
        w[p.ordinal()] = values;
        linears[p.ordinal()] = null;
        version++;
    }

    /** Marks {@code p}'s array as modified in place. */
    public void changed(Proj p) {
        linears[p.ordinal()] = null;
        version++;
    }

    /** Marks the norm weights or biases as modified in place. */
    public void changedNorms() {
        version++;
    }

    /** Incremented by every change, so cached activations can tell they are stale. */
    public int version() {
        return version;
    }

    /** An engine linear layer over the current weights (rebuilt after a change). */
    public Linear linear(Proj p, Parallel pool) {
        Linear l = linears[p.ordinal()];
        if (l == null) {
            l = new PanelLinear(w[p.ordinal()], rows(p), cols(p), pool);
            linears[p.ordinal()] = l;
        }
        return l;
    }

    /** A deep copy (for trying transformations). */
    public BlockWeights copy() {
        BlockWeights b = new BlockWeights(layer, config, attnNorm.clone(), ffnNorm.clone(), bq == null ? null : bq.clone(),
                bk == null ? null : bk.clone(), bv == null ? null : bv.clone());
        for (int i = 0; i < w.length; i++) b.w[i] = w[i].clone();
        return b;
    }
}
