package dev.lathe.prune;

/** How the kept (non-zero) values of a sparse matrix are stored. */
public enum ValueType {
    F32(4),
    F16(2),
    BF16(2),
    /** int8 values with one F16 scale per group of {@value SparseKernels#Q8_GROUP} columns of a row (Q8_0-style) */
    Q8(1);

    public final int bytes;

    ValueType(int bytes) {
        this.bytes = bytes;
    }
}
