package dev.lathe.prune;

import dev.lathe.model.WeightSource;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Builds a {@link ModelPruner.PrunedSource} from weights pruned (and possibly fine-tuned) elsewhere, so the
 * pruning writers ({@link SparseSafetensors#write}, the dense GGUF export) can save them: {@code weights}
 * maps canonical names of the sparse matrices to their row-major values; every other tensor comes from
 * {@code base}.
 */
public final class PrunedWeights {
    private PrunedWeights() {}

    public static ModelPruner.PrunedSource of(WeightSource base, Map<String, float[]> weights) {
        for (Map.Entry<String, float[]> e : weights.entrySet()) {
            long n = base.tensor(e.getKey()).numElements();
            if (n != e.getValue().length) throw new IllegalArgumentException("'" + e.getKey() + "' has " + n + " elements, given " + e.getValue().length);
        }
        return new ModelPruner.PrunedSource(base, new LinkedHashMap<>(weights));
    }
}
