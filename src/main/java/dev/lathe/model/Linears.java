package dev.lathe.model;

import dev.lathe.LatheException;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

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

    /**
     * {@code data} itself when it is native (mapped file, off-heap), else a native copy: Vector API loads
     * from heap-backed segments are several times slower, so small heap tensors (random or converted
     * weights) are copied once at layer construction.
     */
    static MemorySegment nativeCopy(MemorySegment data) {
        if (data.isNative() || data.byteSize() == 0) return data;
        MemorySegment copy = Arena.ofAuto().allocate(data.byteSize(), 64);
        copy.copyFrom(data);
        return copy.asReadOnly();
    }
}
