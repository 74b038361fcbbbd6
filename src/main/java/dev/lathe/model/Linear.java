package dev.lathe.model;

/**
 * A linear layer y = W x (no bias; biases are added by the caller). Dense, quantized, sparse, low-rank and
 * codebook layers implement it, so the forward pass never knows how W is stored.
 */
public interface Linear {
    int inFeatures();

    int outFeatures();

    /**
     * Multiplies {@code n} input rows: {@code x} is {@code [n, inFeatures]} row-major, {@code y} receives
     * {@code [n, outFeatures]}. Implementations use all cores and real matrix-matrix kernels for n > 1.
     */
    void forward(float[] x, float[] y, int n);

    /** Bytes the weights occupy in storage. */
    long storageBytes();

    /** Short description of the storage, e.g. "Q4_K" or "F16" or "2:4 sparse Q8_0". */
    String typeName();
}
