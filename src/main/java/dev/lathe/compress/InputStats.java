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
    /** XᵀX, accumulated in its upper triangle; {@link #hessian()} mirrors it. */
    private final double[] h;
    private boolean mirrored = true;
    public long tokens;
    public int calls;

    public InputStats(int cols, boolean hessian) {
        this.cols = cols;
        this.sumSq = new double[cols];
        this.sumAbs = new double[cols];
        this.h = hessian ? new double[cols * cols] : null;
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
        if (h == null) return;
        mirrored = false;
        float[] xt = new float[n * rows];
        for (int r = 0; r < rows; r++) for (int j = 0; j < n; j++) xt[j * rows + r] = x[r * n + j];
        // upper triangle in 4 x 4 tiles of dot products over the call's rows (each loaded column serves four dots)
        int tiles = (n + 3) / 4;
        pool.forRange(tiles, 1, (w, from, to) -> {
            double[] s = new double[16];
            for (int bi = from; bi < to; bi++) {
                int i0 = bi * 4;
                for (int j0 = i0; j0 < n; j0 += 4) {
                    if (i0 + 4 <= n && j0 + 4 <= n) {
                        dev.lathe.tensor.VectorKernels.dot4x4F32(xt, i0 * rows, j0 * rows, rows, s);
                        for (int a = 0; a < 4; a++) {
                            for (int b = 0; b < 4; b++) {
                                int i = i0 + a, j = j0 + b;
                                if (j >= i) h[i * n + j] += s[a * 4 + b];
                            }
                        }
                    } else {
                        for (int i = i0; i < Math.min(n, i0 + 4); i++) {
                            for (int j = Math.max(i, j0); j < Math.min(n, j0 + 4); j++) {
                                h[i * n + j] += dev.lathe.tensor.VectorKernels.dotF32(xt, i * rows, xt, j * rows, rows);
                            }
                        }
                    }
                }
            }
        });
    }

    /** The Hessian XᵀX ({@code cols × cols}, symmetric), or null when not collected. */
    public double[] hessian() {
        if (h != null && !mirrored) {
            int n = cols;
            for (int i = 0; i < n; i++) for (int j = i + 1; j < n; j++) h[j * n + i] = h[i * n + j];
            mirrored = true;
        }
        return h;
    }

    /** Mean of x² per column (what llama-quantize uses as importance after loading an imatrix). */
    public float[] importance() {
        float[] m = new float[cols];
        for (int j = 0; j < cols; j++) m[j] = tokens == 0 ? 0f : (float) (sumSq[j] / tokens);
        return m;
    }
}
