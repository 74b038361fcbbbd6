package dev.lathe.tensor.quant;

import dev.lathe.tensor.ActivationQuantizedCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Random;

/** Row generators and reference arithmetic shared by the codec tests. */
final class QuantTestSupport {
    private QuantTestSupport() {}

    static final List<GgmlType> WEIGHT_QUANTS = List.of(GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0,
            GgmlType.Q5_1, GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_NL);

    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    static ActivationQuantizedCodec codec(GgmlType t) {
        return (ActivationQuantizedCodec) BlockCodecs.get(t);
    }

    /** Row kinds exercised by the property tests. */
    enum Kind { GAUSSIAN, ZERO, TINY, SUBNORMAL, LARGE, HALF_ZERO_BLOCKS, SPARSE, SMALL_INTEGERS, CONSTANT, POSITIVE, HEAVY_TAILED }

    static float[] row(Kind kind, int n, long seed) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            double g = r.nextGaussian();
            x[i] = switch (kind) {
                case GAUSSIAN -> (float) (0.02 * g);
                case ZERO -> 0f;
                case TINY -> (float) (1e-30 * g);
                case SUBNORMAL -> (float) (1e-41 * g);
                case LARGE -> (float) (1e4 * g);
                case HALF_ZERO_BLOCKS -> (i % 64 < 32) ? 0f : (float) g;
                case SPARSE -> r.nextInt(8) == 0 ? (float) (10 * g) : 0f;
                case SMALL_INTEGERS -> (float) Math.round(4 * g);
                case CONSTANT -> 1.5f;
                case POSITIVE -> (float) Math.abs(g) + 1;
                case HEAVY_TAILED -> (float) (g * Math.exp(2 * r.nextGaussian()));
            };
        }
        return x;
    }

    static float[] importance(int n, long seed) {
        Random r = new Random(seed);
        float[] w = new float[n];
        for (int i = 0; i < n; i++) w[i] = r.nextInt(10) == 0 ? 0f : (float) Math.abs(r.nextGaussian());
        return w;
    }

    static MemorySegment quantize(GgmlType t, float[] x, float[] importance) {
        MemorySegment s = MemorySegment.ofArray(new byte[(int) t.bytesFor(x.length)]);
        BlockCodecs.get(t).quantize(x, 0, x.length, importance, s, 0);
        return s;
    }

    static float[] dequantize(GgmlType t, MemorySegment s, int n) {
        float[] y = new float[n];
        BlockCodecs.get(t).dequantize(s, 0, y, 0, n);
        return y;
    }

    /** Activation values represented by a Q8_0/Q8_1/Q8_K row, in double: d * q. */
    static double[] activationValues(GgmlType at, MemorySegment xq, int n) {
        double[] v = new double[n];
        for (int b = 0; b < n / at.blockSize; b++) {
            long o = (long) b * at.typeSize;
            double d;
            long qs;
            if (at == GgmlType.Q8_K) {
                d = xq.get(F32, o);
                qs = o + 4;
            } else {
                d = Float.float16ToFloat(xq.get(I16, o));
                qs = o + (at == GgmlType.Q8_1 ? 4 : 2);
            }
            for (int j = 0; j < at.blockSize; j++) v[b * at.blockSize + j] = d * xq.get(ValueLayout.JAVA_BYTE, qs + j);
        }
        return v;
    }

    /**
     * What ggml_vec_dot_* computes, in double from the decoded weights and activations: sum w_i x_i, except
     * that Q4_1/Q5_1 use the stored s = fp16(d_x * sum q_x) for the min term (as ggml does). Returns
     * {value, tolerance}; the tolerance covers float rounding of the decoded weights and of the kernel's
     * float accumulation.
     */
    static double[] referenceDot(GgmlType t, MemorySegment w, MemorySegment xq, int n) {
        GgmlType at = codec(t).activationType();
        float[] wf = dequantize(t, w, n);
        double[] xv = activationValues(at, xq, n);
        double s = 0, mag = 0;
        for (int i = 0; i < n; i++) {
            s += (double) wf[i] * xv[i];
            mag += Math.abs((double) wf[i] * xv[i]);
        }
        if (t == GgmlType.Q4_1 || t == GgmlType.Q5_1) {
            for (int b = 0; b < n / 32; b++) {
                double m = Float.float16ToFloat(w.get(I16, (long) b * t.typeSize + 2));
                double dx = Float.float16ToFloat(xq.get(I16, 36L * b));
                double sx = Float.float16ToFloat(xq.get(I16, 36L * b + 2));
                long sumq = 0;
                for (int j = 0; j < 32; j++) sumq += xq.get(ValueLayout.JAVA_BYTE, 36L * b + 4 + j);
                s += m * (sx - dx * sumq);
                mag += Math.abs(m * sx) + Math.abs(m * dx * sumq);
            }
        }
        // mins (k-quants) can cancel: bound their size by the largest |w| of the row
        double maxW = 0;
        for (float v : wf) maxW = Math.max(maxW, Math.abs(v));
        double sx = 0;
        for (double v : xv) sx += Math.abs(v);
        return new double[]{s, 1e-5 * (mag + maxW * sx) + 1e-30};
    }
}
