package dev.lathe.model;

import dev.lathe.LatheException;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;

/** Picks the {@link Linear} implementation for a stored weight tensor. */
public final class Linears {
    private Linears() {}

    /** A linear layer over {@code weight} ({@code [out, in]}) using the shared thread pool. */
    public static Linear of(Tensor weight) {
        return of(weight, Parallel.common());
    }

    public static Linear of(Tensor weight, Parallel pool) {
        GgmlType t = weight.type();
        if (weight.dims() != 2) throw new LatheException(weight.name() + ": a linear weight must be 2-D, got " + weight);
        return switch (t) {
            case F32, F16, BF16 -> new DenseLinear(weight, pool);
            default -> {
                if (!t.isQuantized() || !BlockCodecs.supports(t)) {
                    throw new LatheException(weight.name() + ": tensor type " + t + " is not supported for a linear layer");
                }
                yield new QuantLinear(weight, pool);
            }
        };
    }
}
