package dev.lathe.compress;

import dev.lathe.model.Parallel;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * One decoder block during calibration: its weights (changed in place by modifiers), the activations
 * entering it for every calibration sample, the plan, and where quantized results go. Input statistics
 * are computed on demand by running the samples through the block with the current weights, and cached
 * until the weights change.
 */
public final class BlockContext {
    private final BlockWeights weights;
    private final List<float[]> inputs;
    private final List<int[]> samples;
    private final BlockRunner runner;
    private final QuantPlan plan;
    private final Map<String, QuantizedWeight> results;
    private final Parallel pool;
    private final Runnable onPass;
    private Map<Proj.Input, InputStats> stats;
    private boolean statsHaveHessian;
    private int statsVersion = -1;
    private List<float[]> outputs;

    BlockContext(BlockWeights weights, List<float[]> inputs, List<int[]> samples, BlockRunner runner, QuantPlan plan,
                 Map<String, QuantizedWeight> results, Parallel pool, Runnable onSample) {
        this.weights = weights;
        this.inputs = inputs;
        this.samples = samples;
        this.runner = runner;
        this.plan = plan;
        this.results = results;
        this.pool = pool;
        this.onPass = onSample;
    }

    public BlockWeights weights() {
        return weights;
    }

    public int layer() {
        return weights.layer();
    }

    public QuantPlan plan() {
        return plan;
    }

    public Parallel pool() {
        return pool;
    }

    public BlockRunner runner() {
        return runner;
    }

    /** The hidden states entering this block, one {@code [tokens, dim]} array per sample (do not modify). */
    public List<float[]> inputs() {
        return inputs;
    }

    public int tokens(int sample) {
        return samples.get(sample).length;
    }

    /** Records the quantized form of a tensor. */
    public void put(QuantizedWeight q) {
        results.put(q.name(), q);
    }

    /** Statistics of the four projection inputs under the current weights (with Hessians when asked). */
    public Map<Proj.Input, InputStats> stats(boolean hessian) {
        if (stats != null && statsVersion == weights.version() && (statsHaveHessian || !hessian)) return stats;
        if (inputs.isEmpty()) throw new dev.lathe.LatheException("this method needs calibration data (--calib)");
        Map<Proj.Input, InputStats> m = new EnumMap<>(Proj.Input.class);
        var c = runner.config();
        m.put(Proj.Input.ATTN_IN, new InputStats(c.dim(), hessian));
        m.put(Proj.Input.ATTN_OUT, new InputStats(c.qDim(), hessian));
        m.put(Proj.Input.FFN_IN, new InputStats(c.dim(), hessian));
        m.put(Proj.Input.FFN_MID, new InputStats(c.ffnDim(), hessian));
        List<float[]> outs = new java.util.ArrayList<>(inputs.size());
        for (int s = 0; s < inputs.size(); s++) {
            float[] x = inputs.get(s).clone();
            runner.forward(weights, x, tokens(s), (in, a, rows, cols) -> m.get(in).add(a, rows, pool));
            outs.add(x);
            onPass.run();
        }
        stats = m;
        statsHaveHessian = hessian;
        statsVersion = weights.version();
        outputs = outs;
        return m;
    }

    /** The block's outputs under the current weights (reused from the last statistics pass when still valid). */
    List<float[]> outputs() {
        if (outputs != null && statsVersion == weights.version()) return outputs;
        List<float[]> outs = new java.util.ArrayList<>(inputs.size());
        for (int s = 0; s < inputs.size(); s++) {
            float[] x = inputs.get(s).clone();
            runner.forward(weights, x, tokens(s), null);
            outs.add(x);
            onPass.run();
        }
        return outs;
    }
}
