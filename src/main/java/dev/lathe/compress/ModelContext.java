package dev.lathe.compress;

import dev.lathe.model.WeightSource;

import java.util.Map;
import java.util.function.Supplier;

/**
 * What a {@link Modifier} sees after the last block: the source, the plan, the results so far, and the
 * statistics of the output head's input (final-norm activations of the compressed model, computed on demand).
 */
public record ModelContext(WeightSource source, QuantPlan plan, Map<String, QuantizedWeight> results,
                           Supplier<InputStats> outputStats, Supplier<InputStats> outputStatsWithHessian) {}
