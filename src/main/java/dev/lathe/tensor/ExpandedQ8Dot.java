package dev.lathe.tensor;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A weight type whose activations are Q8_0 (Q4_0, Q8_0) and which can also dot with those activations
 * <em>expanded</em>: the int8 quants as floats ({@code xf}, one per value) and the fp16 block scales as
 * floats ({@code xd}, one per 32 values), see {@link #expand}. Expanding once per matmul removes the
 * per-weight-row widening and conversion of the activations from the inner loop. The products of quants are
 * exact in float, so the result equals {@link ActivationQuantizedCodec#dotQuantized} on the unexpanded
 * activations: bit for bit with 16-lane float vectors (AVX-512), to within float rounding otherwise.
 */
public interface ExpandedQ8Dot extends ActivationQuantizedCodec {
    /** Dot of {@code n} stored weights at {@code wOff} with expanded Q8_0 activations. */
    float dotExpanded(MemorySegment w, long wOff, float[] xf, int xfOff, float[] xd, int xdOff, int n);

    /**
     * {@link #dotExpanded} for {@code rows} activation rows (row {@code i} at {@code xfOff + i * n} and
     * {@code xdOff + i * n / 32}) into {@code out[outOff + i * outStride]}, decoding each weight block once
     * for several rows.
     */
    void dotExpandedRows(MemorySegment w, long wOff, float[] xf, int xfOff, float[] xd, int xdOff, int rows, int n,
                         float[] out, int outOff, int outStride);

    /**
     * Decodes one stored weight row of {@code n} values to the same expanded form as activations: quants
     * (after their offset, e.g. q - 8 for Q4_0) as floats into {@code wf[wfOff ..]}, block scales into
     * {@code wd[wdOff ..]}, so that {@link #dotPanel} can multiply decoded rows with expanded activations.
     */
    void decodeRow(MemorySegment w, long wOff, int n, float[] wf, int wfOff, float[] wd, int wdOff);

    /**
     * Prefill kernel over decoded weight rows ({@link #decodeRow}) and expanded activations ({@link #expand}):
     * {@code y[i * yStride + r] = dot(weight row r, activation row i)} for weight rows {@code [0, wRows)} (row
     * {@code r} at {@code wf[r * n]}, {@code wd[r * n / 32]}) and activation rows {@code [0, xRows)} (row
     * {@code i} at {@code xf[xfOff + i * n]}, {@code xd[xdOff + i * n / 32]}), output at {@code y[yOff + ...]}.
     * Each dot runs the same float operations as {@link #dotExpanded}, so results are identical; 2x2 tiles of
     * (weight row, activation row) share their loads.
     */
    static void dotPanel(float[] wf, float[] wd, int wRows, float[] xf, int xfOff, float[] xd, int xdOff, int xRows, int n,
                         float[] y, int yOff, int yStride) {
        int nb = n / 32;
        VectorSpecies<Float> fs = FloatVector.SPECIES_512;
        if (FloatVector.SPECIES_PREFERRED.length() != 16) {
            for (int r = 0; r < wRows; r++) {
                for (int i = 0; i < xRows; i++) y[yOff + i * yStride + r] = dotScalar(wf, r * n, wd, r * nb, xf, xfOff + i * n, xd, xdOff + i * nb, nb);
            }
            return;
        }
        int r = 0;
        for (; r + 2 <= wRows; r += 2) {
            int w0 = r * n, w1 = w0 + n, e0 = r * nb, e1 = e0 + nb;
            int i = 0;
            for (; i + 2 <= xRows; i += 2) {
                int x0 = xfOff + i * n, x1 = x0 + n, d0 = xdOff + i * nb, d1 = d0 + nb;
                FloatVector a00 = FloatVector.zero(fs), a01 = a00, a10 = a00, a11 = a00, z = a00;
                for (int b = 0; b < nb; b++) {
                    int o = 32 * b;
                    FloatVector wl0 = FloatVector.fromArray(fs, wf, w0 + o), wh0 = FloatVector.fromArray(fs, wf, w0 + o + 16);
                    FloatVector wl1 = FloatVector.fromArray(fs, wf, w1 + o), wh1 = FloatVector.fromArray(fs, wf, w1 + o + 16);
                    FloatVector xl0 = FloatVector.fromArray(fs, xf, x0 + o), xh0 = FloatVector.fromArray(fs, xf, x0 + o + 16);
                    FloatVector xl1 = FloatVector.fromArray(fs, xf, x1 + o), xh1 = FloatVector.fromArray(fs, xf, x1 + o + 16);
                    float dw0 = wd[e0 + b], dw1 = wd[e1 + b], dx0 = xd[d0 + b], dx1 = xd[d1 + b];
                    a00 = wh0.fma(xh0, wl0.fma(xl0, z)).fma(FloatVector.broadcast(fs, dw0 * dx0), a00);
                    a01 = wh0.fma(xh1, wl0.fma(xl1, z)).fma(FloatVector.broadcast(fs, dw0 * dx1), a01);
                    a10 = wh1.fma(xh0, wl1.fma(xl0, z)).fma(FloatVector.broadcast(fs, dw1 * dx0), a10);
                    a11 = wh1.fma(xh1, wl1.fma(xl1, z)).fma(FloatVector.broadcast(fs, dw1 * dx1), a11);
                }
                y[yOff + i * yStride + r] = VectorKernels.sum(a00);
                y[yOff + (i + 1) * yStride + r] = VectorKernels.sum(a01);
                y[yOff + i * yStride + r + 1] = VectorKernels.sum(a10);
                y[yOff + (i + 1) * yStride + r + 1] = VectorKernels.sum(a11);
            }
            for (; i < xRows; i++) {
                y[yOff + i * yStride + r] = dotVector(wf, w0, wd, e0, xf, xfOff + i * n, xd, xdOff + i * nb, nb);
                y[yOff + i * yStride + r + 1] = dotVector(wf, w1, wd, e1, xf, xfOff + i * n, xd, xdOff + i * nb, nb);
            }
        }
        for (; r < wRows; r++) {
            for (int i = 0; i < xRows; i++) y[yOff + i * yStride + r] = dotVector(wf, r * n, wd, r * nb, xf, xfOff + i * n, xd, xdOff + i * nb, nb);
        }
    }

    private static float dotVector(float[] wf, int w0, float[] wd, int e0, float[] xf, int x0, float[] xd, int d0, int nb) {
        VectorSpecies<Float> fs = FloatVector.SPECIES_512;
        FloatVector acc = FloatVector.zero(fs), z = acc;
        for (int b = 0; b < nb; b++) {
            int o = 32 * b;
            FloatVector s = FloatVector.fromArray(fs, wf, w0 + o).fma(FloatVector.fromArray(fs, xf, x0 + o), z);
            s = FloatVector.fromArray(fs, wf, w0 + o + 16).fma(FloatVector.fromArray(fs, xf, x0 + o + 16), s);
            acc = s.fma(FloatVector.broadcast(fs, wd[e0 + b] * xd[d0 + b]), acc);
        }
        return VectorKernels.sum(acc);
    }

    private static float dotScalar(float[] wf, int w0, float[] wd, int e0, float[] xf, int x0, float[] xd, int d0, int nb) {
        float s = 0;
        for (int b = 0; b < nb; b++) {
            float bs = 0;
            for (int j = 0; j < 32; j++) bs += wf[w0 + 32 * b + j] * xf[x0 + 32 * b + j];
            s += bs * (wd[e0 + b] * xd[d0 + b]);
        }
        return s;
    }

    /**
     * Expands {@code n} Q8_0 activations at {@code xq + off} into {@code xf[xfOff ..]} (quants as floats) and
     * {@code xd[xdOff ..]} (block scales as floats).
     */
    static void expand(MemorySegment xq, long off, int n, float[] xf, int xfOff, float[] xd, int xdOff) {
        if (n % 32 != 0) throw new IllegalArgumentException("Q8_0 activations need a multiple of 32 values, got " + n);
        VectorSpecies<Byte> b16 = ByteVector.SPECIES_128;
        VectorSpecies<Integer> is = IntVector.SPECIES_PREFERRED.length() >= 16 ? IntVector.SPECIES_512 : null;
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long o = off + 34L * b;
            xd[xdOff + b] = Float.float16ToFloat(xq.get(I16, o));
            int xo = xfOff + 32 * b;
            if (is != null) {
                for (int h = 0; h < 2; h++) {
                    ByteVector q = ByteVector.fromMemorySegment(b16, xq, o + 2 + 16 * h, ByteOrder.LITTLE_ENDIAN);
                    ((FloatVector) ((IntVector) q.convertShape(VectorOperators.B2I, is, 0)).convert(VectorOperators.I2F, 0)).intoArray(xf, xo + 16 * h);
                }
            } else {
                for (int j = 0; j < 32; j++) xf[xo + j] = xq.get(ValueLayout.JAVA_BYTE, o + 2 + j);
            }
        }
    }

    ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
}
