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
        // upper triangle in tiles of 8 rows (i) x 2 vectors of columns (j), summed over the call's tokens in
        // float registers (x[r, i] broadcast, x[r, j..] loaded), then added to the double Hessian
        int lanes = FS.length(), tj = 2 * lanes;
        int iTiles = (n + 7) / 8;
        pool.forRange(iTiles, 1, (w, from, to) -> {
            float[] tmp = new float[8 * tj];
            for (int bi = from; bi < to; bi++) {
                int i0 = bi * 8, ni = Math.min(8, n - i0);
                for (int j0 = i0 - i0 % tj; j0 < n; j0 += tj) {
                    if (ni == 8 && j0 + tj <= n) {
                        tile8(x, n, rows, i0, j0, tmp);
                    } else {
                        java.util.Arrays.fill(tmp, 0f);
                        for (int r = 0; r < rows; r++) {
                            int ro = r * n;
                            for (int a = 0; a < ni; a++) {
                                float xi = x[ro + i0 + a];
                                for (int c = 0; c < tj && j0 + c < n; c++) tmp[a * tj + c] += xi * x[ro + j0 + c];
                            }
                        }
                    }
                    for (int a = 0; a < ni; a++) {
                        int i = i0 + a;
                        for (int c = Math.max(0, i - j0); c < tj && j0 + c < n; c++) h[i * n + j0 + c] += tmp[a * tj + c];
                    }
                }
            }
        });
    }

    private static final jdk.incubator.vector.VectorSpecies<Float> FS = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED;

    /** tmp[a * 2L + c] = sum_r x[r, i0 + a] * x[r, j0 + c] for a < 8, c < 2L (L lanes). */
    private static void tile8(float[] x, int n, int rows, int i0, int j0, float[] tmp) {
        var z = jdk.incubator.vector.FloatVector.zero(FS);
        var a0 = z; var a1 = z; var b0 = z; var b1 = z; var c0 = z; var c1 = z; var d0 = z; var d1 = z;
        var e0 = z; var e1 = z; var f0 = z; var f1 = z; var g0 = z; var g1 = z; var k0 = z; var k1 = z;
        int lanes = FS.length();
        for (int r = 0; r < rows; r++) {
            int ro = r * n, xi = ro + i0;
            var y0 = jdk.incubator.vector.FloatVector.fromArray(FS, x, ro + j0);
            var y1 = jdk.incubator.vector.FloatVector.fromArray(FS, x, ro + j0 + lanes);
            jdk.incubator.vector.FloatVector v;
            v = jdk.incubator.vector.FloatVector.broadcast(FS, x[xi]); a0 = y0.fma(v, a0); a1 = y1.fma(v, a1);
            v = jdk.incubator.vector.FloatVector.broadcast(FS, x[xi + 1]); b0 = y0.fma(v, b0); b1 = y1.fma(v, b1);
            v = jdk.incubator.vector.FloatVector.broadcast(FS, x[xi + 2]); c0 = y0.fma(v, c0); c1 = y1.fma(v, c1);
            v = jdk.incubator.vector.FloatVector.broadcast(FS, x[xi + 3]); d0 = y0.fma(v, d0); d1 = y1.fma(v, d1);
            v = jdk.incubator.vector.FloatVector.broadcast(FS, x[xi + 4]); e0 = y0.fma(v, e0); e1 = y1.fma(v, e1);
            v = jdk.incubator.vector.FloatVector.broadcast(FS, x[xi + 5]); f0 = y0.fma(v, f0); f1 = y1.fma(v, f1);
            v = jdk.incubator.vector.FloatVector.broadcast(FS, x[xi + 6]); g0 = y0.fma(v, g0); g1 = y1.fma(v, g1);
            v = jdk.incubator.vector.FloatVector.broadcast(FS, x[xi + 7]); k0 = y0.fma(v, k0); k1 = y1.fma(v, k1);
        }
        int tj = 2 * lanes;
        a0.intoArray(tmp, 0); a1.intoArray(tmp, lanes);
        b0.intoArray(tmp, tj); b1.intoArray(tmp, tj + lanes);
        c0.intoArray(tmp, 2 * tj); c1.intoArray(tmp, 2 * tj + lanes);
        d0.intoArray(tmp, 3 * tj); d1.intoArray(tmp, 3 * tj + lanes);
        e0.intoArray(tmp, 4 * tj); e1.intoArray(tmp, 4 * tj + lanes);
        f0.intoArray(tmp, 5 * tj); f1.intoArray(tmp, 5 * tj + lanes);
        g0.intoArray(tmp, 6 * tj); g1.intoArray(tmp, 6 * tj + lanes);
        k0.intoArray(tmp, 7 * tj); k1.intoArray(tmp, 7 * tj + lanes);
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
