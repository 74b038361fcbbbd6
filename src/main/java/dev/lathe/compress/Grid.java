package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.model.Parallel;
import dev.lathe.tensor.BlockCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;

import java.lang.foreign.MemorySegment;

/**
 * The set of values a weight matrix may take in a {@link WeightFormat}, used column by column: when a
 * group's first column is reached, {@link Worker#begin} fixes that group's parameters (for a GGUF block
 * type: encodes the whole block through the codec from the current, error-compensated weights); then
 * {@link Worker#value} gives each column's quantized value. The encoded matrix is in {@link #result()}.
 * Rows are independent: workers on different rows may run in parallel.
 */
public abstract sealed class Grid {
    final String name;
    final int rows, cols;

    private Grid(String name, int rows, int cols) {
        this.name = name;
        this.rows = rows;
        this.cols = cols;
    }

    /** One thread's view of the grid; {@code w} is the current row (indexed by column). */
    public interface Worker {
        void begin(int row, float[] w, int col);

        float value(int row, int col, float w);
    }

    /** @param importance per-column weights for the codec's scale search (null for none) */
    public static Grid of(WeightFormat f, String name, int rows, int cols, float[] importance) {
        int g = f.groupSize(cols);
        if (cols % g != 0) throw new LatheException(name + ": row length " + cols + " is not a multiple of the " + f + " group size " + g);
        if (importance != null && importance.length != cols) {
            throw new LatheException(name + ": importance has " + importance.length + " values for rows of " + cols);
        }
        return switch (f) {
            case WeightFormat.Gguf gg -> new Codec(name, rows, cols, gg.type(), importance);
            case WeightFormat.Int in -> new Ints(name, rows, cols, in);
        };
    }

    public abstract int groupSize();

    public abstract Worker worker();

    public abstract QuantizedWeight result();

    /** Round-to-nearest of the whole matrix {@code w} ({@code [rows, cols]}); returns the decoded weights. */
    public abstract float[] roundToNearest(float[] w, Parallel pool);

    static final class Codec extends Grid {
        final GgmlType type;
        final BlockCodec codec;
        final float[] importance;
        final byte[] data;
        final MemorySegment seg;
        final long rowBytes;

        Codec(String name, int rows, int cols, GgmlType type, float[] importance) {
            super(name, rows, cols);
            this.type = type;
            this.codec = BlockCodecs.get(type);
            this.importance = importance;
            this.rowBytes = type.bytesFor(cols);
            this.data = new byte[Math.toIntExact(rowBytes * rows)];
            this.seg = MemorySegment.ofArray(data);
        }

        /**
         * Columns fixed at a time: the block, or 32 columns of a 256-weight k-quant super-block. At each
         * 32-column step the whole super-block is re-encoded from the already fixed values followed by the
         * current (error-compensated) weights of the rest, so later sub-blocks still benefit from GPTQ's updates.
         */
        @Override
        public int groupSize() {
            return Math.min(type.blockSize, 32);
        }

        /** Whole rows through the codec, as llama-quantize does (some codecs use row-level statistics). */
        @Override
        public float[] roundToNearest(float[] w, Parallel pool) {
            pool.forRange(rows, 1, (t, from, to) -> {
                for (int r = from; r < to; r++) codec.quantize(w, r * cols, cols, importance, seg, r * rowBytes);
            });
            return result().dequantize();
        }

        @Override
        public Worker worker() {
            int bs = type.blockSize;
            float[] q = new float[bs];
            float[] imp = importance == null ? null : new float[bs];
            float[] src = new float[bs];
            return new Worker() {
                int start = -1;

                @Override
                public void begin(int row, float[] w, int col) {
                    int b0 = col - col % bs;
                    long off = row * rowBytes + (long) (b0 / bs) * type.typeSize;
                    if (col == b0) {
                        System.arraycopy(w, b0, src, 0, bs);
                    } else {
                        System.arraycopy(q, 0, src, 0, col - b0);
                        System.arraycopy(w, col, src, col - b0, bs - (col - b0));
                    }
                    if (imp != null) System.arraycopy(importance, b0, imp, 0, bs);
                    codec.quantize(src, 0, bs, imp, seg, off);
                    codec.dequantize(seg, off, q, 0, bs);
                    start = b0;
                }

                @Override
                public float value(int row, int col, float w) {
                    return q[col - start];
                }
            };
        }

        @Override
        public QuantizedWeight result() {
            return new QuantizedWeight.Gguf(name, type, rows, cols, data);
        }
    }

    static final class Ints extends Grid {
        final WeightFormat.Int f;
        final int g, ng;
        final byte[] q, zeros;
        final float[] scales;

        Ints(String name, int rows, int cols, WeightFormat.Int f) {
            super(name, rows, cols);
            this.f = f;
            this.g = f.groupSize(cols);
            this.ng = cols / g;
            this.q = new byte[rows * cols];
            this.scales = new float[rows * ng];
            this.zeros = new byte[rows * ng];
        }

        @Override
        public int groupSize() {
            return g;
        }

        @Override
        public float[] roundToNearest(float[] w, Parallel pool) {
            pool.forRange(rows, 1, (t, from, to) -> {
                for (int r = from; r < to; r++) {
                    for (int c = 0; c < cols; c += g) {
                        params(r, w, r * cols + c, c);
                        for (int i = 0; i < g; i++) q[r * cols + c + i] = (byte) round(r, c + i, w[r * cols + c + i]);
                    }
                }
            });
            return result().dequantize();
        }

        /**
         * compressed-tensors' min-max parameters for the group holding column {@code col}, from
         * {@code w[off .. off+g)}: symmetric scale = max|w| / ((qmax-qmin)/2); asymmetric over [min(w,0), max(w,0)].
         */
        void params(int row, float[] w, int off, int col) {
            float min = 0, max = 0;
            for (int i = 0; i < g; i++) {
                min = Math.min(min, w[off + i]);
                max = Math.max(max, w[off + i]);
            }
            int gi = row * ng + col / g;
            int qmin = f.qmin(), qmax = f.qmax();
            float scale;
            int zero = 0;
            if (f.symmetric()) {
                float amax = Math.max(-min, max);
                scale = amax / ((qmax - qmin) / 2f);
            } else {
                scale = (max - min) / (qmax - qmin);
                if (scale > 0) zero = (int) Math.max(qmin, Math.min(qmax, Math.rint(qmin - min / scale)));
            }
            if (!(scale > 0)) scale = 1f;
            scales[gi] = scale;
            zeros[gi] = (byte) zero;
        }

        int round(int row, int col, float w) {
            int gi = row * ng + col / g;
            int v = (int) Math.rint(w / scales[gi]) + zeros[gi];
            return Math.max(f.qmin(), Math.min(f.qmax(), v));
        }

        @Override
        public Worker worker() {
            return new Worker() {
                @Override
                public void begin(int row, float[] w, int col) {
                    params(row, w, col, col);
                }

                @Override
                public float value(int row, int col, float w) {
                    int v = round(row, col, w);
                    q[row * cols + col] = (byte) v;
                    int gi = row * ng + col / g;
                    return (v - zeros[gi]) * scales[gi];
                }
            };
        }

        @Override
        public QuantizedWeight result() {
            return new QuantizedWeight.Int(name, f, rows, cols, q, scales, zeros);
        }
    }
}
