package dev.lathe.prune;

import dev.lathe.tensor.PanelGemm;
import dev.lathe.model.Linear;
import dev.lathe.model.Linears;
import dev.lathe.model.LlamaModel;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.TensorOps;
import dev.lathe.model.Parallel;

/**
 * A {@link Linear} over a {@link SparseMatrix}. Decode (n = 1): output rows split over the pool, each row a
 * masked-expand dot product that reads only the kept values and the bitmask. Prefill (n > 1): by default
 * {@link SparseGemm} (the input transposed in blocks of up to 4L rows, each weight row walking its kept values
 * into register accumulators: work proportional to the kept values); for small batches of nearly dense
 * matrices the old panel route can be faster (each thread expands a panel of {@value #PANEL} rows into a dense
 * buffer once and multiplies it with all input rows); {@link #route} picks per call by a cost model.
 */
public final class SparseLinear implements Linear {
    static final int PANEL = 16;
    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);
    /** The calling thread's transposed input (read by all workers of a call). */
    private static final ThreadLocal<float[][]> XT = ThreadLocal.withInitial(() -> new float[1][0]);
    private static final ThreadLocal<SparseGemm.Work> WORK = ThreadLocal.withInitial(SparseGemm.Work::new);

    private static final class Scratch {
        float[] panel = new float[0];
        float[] tile = new float[0];
        float[] values = new float[0];
    }

    private final SparseMatrix w;
    private final Parallel pool;
    private final String name;

    public SparseLinear(SparseMatrix w, Parallel pool) {
        this(w, pool, "sparse");
    }

    public SparseLinear(SparseMatrix w, Parallel pool, String name) {
        this.w = w;
        this.pool = pool;
        this.name = name;
    }

    /**
     * A factory that stores a weight sparsely (values as {@code vt}) when at least {@code minSparsity} of it is
     * exactly zero, and as the usual dense or quantized layer otherwise; lets a dense-saved pruned model (GGUF
     * or HF) run on the sparse kernels: {@code LlamaModel.load(src, pool, SparseLinear.factory(0.5, F16))}.
     */
    public static LlamaModel.LinearFactory factory(double minSparsity, ValueType vt) {
        return (t, pool) -> {
            GgmlType type = t.type();
            if ((type == GgmlType.F32 || type == GgmlType.F16 || type == GgmlType.BF16) && t.dims() == 2 && t.numElements() < Integer.MAX_VALUE - 64) {
                float[] w = TensorOps.toFloats(t);
                if (Pruner.sparsity(w) >= minSparsity && (vt != ValueType.Q8 || t.cols() % SparseKernels.Q8_GROUP == 0)) {
                    return new SparseLinear(SparseMatrix.encode(w, (int) t.rows(), (int) t.cols(), vt), pool, t.name());
                }
            }
            return Linears.of(t, pool);
        };
    }

    public SparseMatrix matrix() {
        return w;
    }

    @Override
    public int inFeatures() {
        return w.cols;
    }

    @Override
    public int outFeatures() {
        return w.rows;
    }

    @Override
    public long storageBytes() {
        return w.storageBytes();
    }

    @Override
    public String typeName() {
        return w.describe();
    }

    /** How a batch of input rows is multiplied; {@link #route} picks one per call. */
    enum Route {
        /** the decode kernel once per input row */
        ROWS,
        /** panels of {@value #PANEL} rows expanded to dense floats, then a dense multiply */
        PANEL,
        /** {@link SparseGemm}: transposed input blocks, work proportional to the kept values */
        SPARSE
    }

    /**
     * The route for a batch of n rows: the decode kernel for one row, else whichever of {@link Route#SPARSE}
     * and {@link Route#PANEL} the cost model of {@link SparseGemm#cost} says is faster for this n and this
     * matrix's kept values per 64 columns. With L = 16 (session 4 fit, after the panel route moved to
     * PanelGemm) that gives SPARSE for every n at 90 % sparsity, for n = 2-4 and most n at 70 % (PANEL for
     * some n between 30 and 200, where the two estimates are within a few percent), n = 2-4 at 50 %, and PANEL
     * from n = 4 when nothing is pruned. SPARSE runs batches of up to {@value SparseGemm#TAIL} rows (and the tail of a batch) with
     * the decode kernel, row by row.
     */
    Route route(int n) {
        if (n == 1) return Route.ROWS;
        double nz = (double) w.storedValues() / ((double) w.rows * w.maskWords);
        return SparseGemm.cost(n, nz) <= SparseGemm.panelCost(n) ? Route.SPARSE : Route.PANEL;
    }

    @Override
    public void forward(float[] x, float[] y, int n) {
        forward(x, y, n, route(n));
    }

    void forward(float[] x, float[] y, int n, Route route) {
        if (n <= 0) return;
        int in = w.cols, out = w.rows;
        if (x.length < (long) n * in || y.length < (long) n * out) {
            throw new IllegalArgumentException(name + ": buffers too small for " + n + " rows");
        }
        switch (route) {
            case ROWS -> forwardRows(x, y, n);
            case PANEL -> forwardPanel(x, y, n);
            case SPARSE -> forwardSparse(x, y, n);
        }
    }

    private void forwardRows(float[] x, float[] y, int n) {
        int in = w.cols, out = w.rows;
        // as DenseLinear: about 64 Ki columns per chunk, so a small matrix runs inline (no hand-off)
        int minChunk = Math.max(1, 65536 / Math.max(1, in * n));
        pool.forRange(out, minChunk, (worker, from, to) -> {
            Scratch s = scratch(in);
            for (int i = 0; i < n; i++) {
                for (int r = from; r < to; r++) y[i * out + r] = w.rowDot(r, x, i * in, s.values);
            }
        });
    }

    private void forwardSparse(float[] x, float[] y, int n) {
        int in = w.cols, out = w.rows;
        long size = Math.max(1, SparseGemm.transposedSize(n, in));
        if (size > Integer.MAX_VALUE - 64) {
            forwardPanel(x, y, n);
            return;
        }
        float[][] holder = XT.get();
        if (holder[0].length < size) holder[0] = new float[(int) size];
        float[] xt = holder[0];
        SparseGemm.transpose(x, n, in, xt);
        int blocks = (out + SparseGemm.RB - 1) / SparseGemm.RB;
        // enough kept values times input rows per chunk to pay for the hand-off
        long work = Math.max(1L, w.storedValues() / Math.max(1, blocks)) * n;
        int minChunk = (int) Math.max(1, Math.min(blocks, 65536 / work));
        pool.forRange(blocks, minChunk, (worker, from, to) -> {
            SparseGemm.Work s = WORK.get();
            SparseGemm.rows(w, x, xt, n, y, from * SparseGemm.RB, Math.min(out, to * SparseGemm.RB), s);
        });
    }

    private void forwardPanel(float[] x, float[] y, int n) {
        int in = w.cols, out = w.rows;
        int panels = (out + PANEL - 1) / PANEL;
        int lanes = PanelGemm.lanes(), groups = (n + lanes - 1) / lanes;
        long packed = (long) groups * in * lanes;
        if (packed > Integer.MAX_VALUE - 16) throw new IllegalArgumentException(name + ": batch too large");
        float[][] holder = XT.get();
        if (holder[0].length < packed) holder[0] = new float[(int) packed];
        float[] xp = holder[0];
        pool.forRange(groups, 1, (t, from, to) -> {
            for (int g = from; g < to; g++) PanelGemm.packRows(x, in, n, g, xp);
        });
        pool.forRange(panels, 1, (worker, from, to) -> {
            Scratch s = scratch(in);
            if (s.tile.length < 2 * PanelGemm.TILE * lanes) s.tile = new float[2 * PanelGemm.TILE * lanes];
            float[] buf = s.panel, tile = s.tile;
            for (int pnl = from; pnl < to; pnl++) {
                int r0 = pnl * PANEL, nr = Math.min(PANEL, out - r0);
                for (int k = 0; k < nr; k++) w.decodeRow(r0 + k, buf, k * in, s.values);
                if (nr < PANEL) java.util.Arrays.fill(buf, nr * in, PANEL * in, 0f);
                PanelGemm.multiplyPanel(buf, 0, nr, in, xp, n, y, r0, out, tile);
            }
        });
    }

    private static Scratch scratch(int in) {
        Scratch s = SCRATCH.get();
        if (s.panel.length < PANEL * in) s.panel = new float[PANEL * in];
        if (s.values.length < in + SparseKernels.L) s.values = new float[in + SparseKernels.L];
        return s;
    }
}
