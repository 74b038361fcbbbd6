package dev.lathe.prune;

import dev.lathe.compress.BlockContext;
import dev.lathe.compress.BlockWeights;
import dev.lathe.compress.Gptq;
import dev.lathe.compress.Grid;
import dev.lathe.compress.InputStats;
import dev.lathe.compress.ModelContext;
import dev.lathe.compress.Modifier;
import dev.lathe.compress.Proj;
import dev.lathe.compress.QuantizeModifier;
import dev.lathe.compress.WeightFormat;

import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Prunes each decoder block in the calibration pipeline ({@link dev.lathe.compress.Calibrator}): the block's
 * projections see the activations produced by the already pruned blocks before it (sequential pruning, as
 * SparseGPT's and Wanda's reference code do). Magnitude needs no activations; Wanda takes the column norms
 * ‖x_j‖ of the block's inputs; SparseGPT their Hessians. Each block gets its own unstructured sparsity
 * (uniform, or OWL's per-layer allocation) or the N:M pattern. With SparseGPT and a quantization plan, the
 * block's projections are pruned and quantized jointly ({@link SparseGpt}); the embedding and head are then
 * quantized round-to-nearest as the plan says.
 */
public final class PruneModifier implements Modifier {
    private final PruneJob.Method method;
    private final Pattern pattern;
    private final double[] layerSparsity;
    private final Pruner.Scope scope;
    private final Set<String> only;
    private final SparseGpt.Options sparseGpt;
    private final boolean quantize;
    private final Map<String, float[]> pruned;
    private long storedZeros;
    private final Map<String, Long> masked = new LinkedHashMap<>();

    /**
     * @param layerSparsity per-block unstructured sparsity (ignored for an N:M pattern); null = the pattern's
     * @param only          canonical names to prune (empty = all seven projections of every block)
     * @param quantize      SparseGPT only: quantize jointly onto the formats of the block's plan
     * @param store         where the pruned matrices go as each block is done (a {@link SpillMap} keeps them out of the heap)
     */
    public PruneModifier(PruneJob.Method method, Pattern pattern, double[] layerSparsity, Pruner.Scope scope, Set<String> only,
                         SparseGpt.Options sparseGpt, boolean quantize, Map<String, float[]> store) {
        if (quantize && method != PruneJob.Method.SPARSEGPT) throw new IllegalArgumentException("joint quantization is SparseGPT's");
        this.method = method;
        this.pattern = pattern;
        this.layerSparsity = layerSparsity;
        this.scope = scope;
        this.only = Set.copyOf(only);
        this.sparseGpt = sparseGpt == null ? SparseGpt.Options.DEFAULT : sparseGpt;
        this.quantize = quantize;
        this.pruned = store == null ? new LinkedHashMap<>() : store;
    }

    @Override
    public String name() {
        return method.name().toLowerCase(java.util.Locale.ROOT);
    }

    /** The pattern block {@code layer} is pruned to. */
    public Pattern pattern(int layer) {
        if (pattern.isNm() || layerSparsity == null) return pattern;
        return Pattern.unstructured(layerSparsity[layer]);
    }

    @Override
    public void applyToBlock(BlockContext ctx) {
        BlockWeights bw = ctx.weights();
        int layer = bw.layer();
        Pattern p = pattern(layer);
        Map<Proj.Input, InputStats> stats = method == PruneJob.Method.MAGNITUDE ? null : ctx.stats(method == PruneJob.Method.SPARSEGPT);
        Map<Proj.Input, Gptq.Factor> factors = new EnumMap<>(Proj.Input.class);
        for (Proj pr : Proj.values()) {
            String name = pr.tensorName(layer);
            if (!only.isEmpty() && !only.contains(name)) continue;
            int rows = bw.rows(pr), cols = bw.cols(pr);
            float[] w;
            long zeroed;
            switch (method) {
                case MAGNITUDE, WANDA -> {
                    w = bw.weight(pr).clone();
                    float[] s = method == PruneJob.Method.MAGNITUDE ? Pruner.magnitudeScores(w)
                            : Pruner.wandaScores(w, rows, cols, Pruner.columnNorms(stats.get(pr.input).sumSq));
                    zeroed = Pruner.prune(w, s, rows, cols, p, scope);
                }
                default -> {
                    Gptq.Factor f = factors.computeIfAbsent(pr.input, in -> SparseGpt.factor(name, stats.get(in).hessian(), cols, sparseGpt));
                    WeightFormat fmt = quantize ? ctx.plan().format(name) : null;
                    Grid grid = fmt == null ? null : Grid.of(fmt, name, rows, cols, null);
                    SparseGpt.Result r = SparseGpt.prune(name, bw.weight(pr), rows, cols, f, p, sparseGpt, grid, ctx.pool());
                    if (r.quantized() != null) ctx.put(r.quantized());
                    w = r.weights();
                    zeroed = r.pruned();
                }
            }
            bw.set(pr, w);
            pruned.put(name, w);
            for (float v : w) if (v == 0f) storedZeros++;
            masked.put(name, zeroed);
        }
    }

    @Override
    public void finish(ModelContext mc) {
        if (quantize) QuantizeModifier.rtn().finish(mc); // embedding and head: round-to-nearest (the plan's formats)
    }

    /** The pruned weights by canonical name (decoded, when quantized). */
    public Map<String, float[]> pruned() {
        return pruned;
    }

    /** Exact zeros in the pruned matrices as stored (decoded, when quantized). */
    public long storedZeros() {
        return storedZeros;
    }

    /** How many weights of each tensor the mask removed. */
    public Map<String, Long> masked() {
        return masked;
    }
}
