package dev.lathe.compress;

import dev.lathe.model.Linear;
import dev.lathe.model.Parallel;
import dev.lathe.tensor.PanelGemm;
import dev.lathe.tensor.VectorKernels;

/**
 * The calibration pipeline's linear layer over float weights ({@code [out, in]} row-major, as
 * {@link BlockWeights} holds them while it compresses a block): the input rows are packed column-major in
 * groups of {@link PanelGemm#lanes()} once per call and multiplied with {@link PanelGemm}'s register tiles
 * (8 weight rows x one or two groups; one vector load of a column serves 8 or 16 fused multiply-adds), the
 * weight rows read in place. Calibration only needs the products to float rounding, so this trades the
 * engine's bit-for-bit agreement between decode and batched paths for speed: the block forward passes are
 * the largest share of GPTQ's work on large models.
 */
final class PanelLinear implements Linear {
    private final float[] w;
    private final int in, out;
    private final Parallel pool;

    PanelLinear(float[] w, int out, int in, Parallel pool) {
        if ((long) out * in != w.length) throw new IllegalArgumentException("weights hold " + w.length + " values, not " + out + " x " + in);
        this.w = w;
        this.in = in;
        this.out = out;
        this.pool = pool;
    }

    @Override
    public int inFeatures() {
        return in;
    }

    @Override
    public int outFeatures() {
        return out;
    }

    @Override
    public long storageBytes() {
        return 4L * w.length;
    }

    @Override
    public String typeName() {
        return "F32";
    }

    @Override
    public void forward(float[] x, float[] y, int n) {
        if (n <= 0) return;
        int lanes = PanelGemm.lanes(), groups = (n + lanes - 1) / lanes;
        float[] xp = new float[groups * in * lanes];
        pool.forRange(groups, 1, (t, from, to) -> {
            for (int g = from; g < to; g++) PanelGemm.packRows(x, in, n, g, xp);
        });
        int tiles = out / PanelGemm.TILE, full = tiles * PanelGemm.TILE;
        pool.forRange(tiles, 1, (t, from, to) -> {
            float[] tile = new float[2 * PanelGemm.TILE * lanes];
            for (int tr = from; tr < to; tr++) {
                PanelGemm.multiplyPanel(w, tr * PanelGemm.TILE * in, PanelGemm.TILE, in, xp, n, y, tr * PanelGemm.TILE, out, tile);
            }
        });
        // the last out % 8 weight rows
        for (int r = full; r < out; r++) {
            for (int i = 0; i < n; i++) y[i * out + r] = VectorKernels.dotF32(w, r * in, x, i * in, in);
        }
    }
}
