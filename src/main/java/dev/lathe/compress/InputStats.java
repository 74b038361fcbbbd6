package dev.lathe.compress;

import dev.lathe.model.Parallel;

/**
 * Statistics of the activations one group of projections multiplies, summed over all calibration tokens:
 * the per-column sum of squares (the importance matrix, llama-imatrix's values), the token count, the
 * number of matmul calls, and optionally the Hessian {@code H = XᵀX} ({@code cols × cols}, double).
 */
public final class InputStats {
    public final int cols;
    public final double[] sumSq;
    public final double[] sumAbs;
    public final double[] hessian;
    public long tokens;
    public int calls;

    public InputStats(int cols, boolean hessian) {
        this.cols = cols;
        this.sumSq = new double[cols];
        this.sumAbs = new double[cols];
        this.hessian = hessian ? new double[cols * cols] : null;
    }

    /** Adds {@code rows} rows of {@code x} (one matmul call). */
    public void add(float[] x, int rows, Parallel pool) {
        calls++;
        tokens += rows;
        int n = cols;
        for (int r = 0; r < rows; r++) {
            int o = r * n;
            for (int j = 0; j < n; j++) {
                sumSq[j] += (double) x[o + j] * x[o + j];
                sumAbs[j] += Math.abs(x[o + j]);
            }
        }
        if (hessian == null) return;
        float[] xt = new float[n * rows];
        for (int r = 0; r < rows; r++) for (int j = 0; j < n; j++) xt[j * rows + r] = x[r * n + j];
        pool.forRange(n, 4, (w, from, to) -> {
            for (int i = from; i < to; i++) {
                int io = i * rows;
                for (int j = i; j < n; j++) {
                    // one matmul call's dot in float (vectorized), summed over calls in double
                    double s = dev.lathe.tensor.VectorKernels.dotF32(xt, io, xt, j * rows, rows);
                    hessian[i * n + j] += s;
                    if (j != i) hessian[j * n + i] += s;
                }
            }
        });
    }

    /** Mean of x² per column (what llama-quantize uses as importance after loading an imatrix). */
    public float[] importance() {
        float[] m = new float[cols];
        for (int j = 0; j < cols; j++) m[j] = tokens == 0 ? 0f : (float) (sumSq[j] / tokens);
        return m;
    }
}
