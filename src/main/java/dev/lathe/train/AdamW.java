package dev.lathe.train;

import java.util.List;

/**
 * AdamW with decoupled weight decay, as PyTorch's {@code torch.optim.AdamW}: for each parameter
 * {@code p ← p·(1 − lr·wd)} (only for parameters with {@link TrainModel.Param#decay()}, i.e. not norms or
 * biases), {@code m ← β₁m + (1−β₁)g}, {@code v ← β₂v + (1−β₂)g²},
 * {@code p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)}.
 */
public final class AdamW {
    private final List<TrainModel.Param> params;
    private final float[][] m, v;
    private final double beta1, beta2, eps, weightDecay;
    private final Parallel par;
    private long t;

    public AdamW(List<TrainModel.Param> params, double beta1, double beta2, double eps, double weightDecay) {
        this(params, beta1, beta2, eps, weightDecay, Parallel.common());
    }

    public AdamW(List<TrainModel.Param> params, double beta1, double beta2, double eps, double weightDecay, Parallel par) {
        if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0 && weightDecay >= 0)) {
            throw new IllegalArgumentException("bad AdamW settings beta1=" + beta1 + " beta2=" + beta2 + " eps=" + eps + " wd=" + weightDecay);
        }
        this.params = List.copyOf(params);
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        this.par = par;
        m = new float[params.size()][];
        v = new float[params.size()][];
        for (int i = 0; i < params.size(); i++) {
            m[i] = new float[params.get(i).size()];
            v[i] = new float[params.get(i).size()];
        }
    }

    /** Steps taken so far. */
    public long steps() {
        return t;
    }

    public float[] firstMoment(int paramIndex) {
        return m[paramIndex];
    }

    public float[] secondMoment(int paramIndex) {
        return v[paramIndex];
    }

    /** Restores the step count (the moments are restored by writing into {@link #firstMoment}/{@link #secondMoment}). */
    public void setSteps(long steps) {
        if (steps < 0) throw new IllegalArgumentException("steps " + steps);
        t = steps;
    }

    /** One update of every parameter from its current gradient with learning rate lr. */
    public void step(double lr) {
        t++;
        double bc1 = 1 - Math.pow(beta1, t), bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, t));
        float stepSize = (float) (lr / bc1);
        float b1 = (float) beta1, b2 = (float) beta2, omb1 = (float) (1 - beta1), omb2 = (float) (1 - beta2);
        float fEps = (float) eps, fBc2 = (float) bc2Sqrt;
        final int chunk = 1 << 14;
        for (int pi = 0; pi < params.size(); pi++) {
            TrainModel.Param p = params.get(pi);
            float[] w = p.data(), g = p.grad(), mm = m[pi], vv = v[pi];
            float decay = p.decay() ? (float) (1 - lr * weightDecay) : 1f;
            int n = w.length;
            par.forEach((n + chunk - 1) / chunk, c -> {
                int e = Math.min(n, (c + 1) * chunk);
                for (int i = c * chunk; i < e; i++) {
                    float gi = g[i];
                    float mi = b1 * mm[i] + omb1 * gi;
                    float vi = b2 * vv[i] + omb2 * gi * gi;
                    mm[i] = mi;
                    vv[i] = vi;
                    float denom = (float) Math.sqrt(vi) / fBc2 + fEps;
                    w[i] = w[i] * decay - stepSize * mi / denom;
                }
            });
        }
    }

    /** √(Σ g²) over every parameter's gradient (double accumulation). */
    public static double gradNorm(List<TrainModel.Param> params) {
        double s = 0;
        for (TrainModel.Param p : params) {
            float[] g = p.grad();
            double ps = 0;
            for (float x : g) ps += (double) x * x;
            s += ps;
        }
        return Math.sqrt(s);
    }

    /**
     * Clips gradients by global norm: when the norm exceeds maxNorm, every gradient is multiplied by
     * maxNorm / (norm + 1e-6) (PyTorch's clip_grad_norm_). Returns the norm before clipping.
     * maxNorm ≤ 0 disables clipping.
     */
    public static double clipGradNorm(List<TrainModel.Param> params, double maxNorm) {
        double norm = gradNorm(params);
        if (maxNorm > 0 && norm > maxNorm && Double.isFinite(norm)) {
            float f = (float) (maxNorm / (norm + 1e-6));
            for (TrainModel.Param p : params) {
                float[] g = p.grad();
                for (int i = 0; i < g.length; i++) g[i] *= f;
            }
        }
        return norm;
    }
}
