package dev.lathe.tensor.quant;

import dev.lathe.LatheException;
import dev.lathe.tensor.ActivationQuantizedCodec;
import dev.lathe.tensor.ActivationQuantizer;
import dev.lathe.tensor.BlockCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.quant.QuantTestSupport.Kind;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

import static dev.lathe.tensor.quant.QuantTestSupport.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/** Seeded random-row properties of every llama.cpp block codec. */
class QuantCodecPropertiesTest {

    @Provide
    Arbitrary<GgmlType> weightTypes() {
        return Arbitraries.of(WEIGHT_QUANTS);
    }

    @Provide
    Arbitrary<GgmlType> activationTypes() {
        return Arbitraries.of(GgmlType.Q8_0, GgmlType.Q8_1, GgmlType.Q8_K);
    }

    /** Rows are 1..4 super-blocks long (256 weights each) so every type applies. */
    private static int len(int superBlocks) {
        return 256 * superBlocks;
    }

    @Property(tries = 60, seed = "20261124")
    void dotQuantizedEqualsIntegerReference(@ForAll("weightTypes") GgmlType t, @ForAll Kind wk, @ForAll Kind xk,
                                            @ForAll @IntRange(min = 1, max = 4) int sb, @ForAll long seed) {
        int n = len(sb);
        float[] w = row(wk, n, seed);
        float[] x = row(xk == Kind.SUBNORMAL ? Kind.TINY : xk, n, seed ^ 0x5DEECE66DL);
        ActivationQuantizedCodec c = codec(t);
        MemorySegment ws = quantize(t, w, null);
        MemorySegment xq = MemorySegment.ofArray(new byte[(int) c.activationBytes(n)]);
        c.quantizeActivations(x, 0, n, xq, 0);
        double[] ref = referenceDot(t, ws, xq, n);
        float got = c.dotQuantized(ws, 0, xq, 0, n);
        if (!Double.isFinite(ref[0])) {
            // Q8_1's s = fp16(d * sum q) overflows for |x| beyond ~2000 per block; llama.cpp's dot is then inf/NaN too
            assertThat(Float.isFinite(got)).isFalse();
            return;
        }
        assertThat((double) got).isCloseTo(ref[0], within(ref[1]));
    }

    @Property(tries = 60, seed = "20261124")
    void floatDotEqualsDequantizedDot(@ForAll("weightTypes") GgmlType t, @ForAll Kind wk,
                                      @ForAll @IntRange(min = 1, max = 4) int sb, @ForAll long seed) {
        int n = len(sb);
        float[] w = row(wk, n, seed);
        float[] x = row(Kind.GAUSSIAN, n, seed + 1);
        MemorySegment ws = quantize(t, w, null);
        float[] wf = dequantize(t, ws, n);
        double ref = 0, mag = 0;
        for (int i = 0; i < n; i++) {
            ref += (double) wf[i] * x[i];
            mag += Math.abs((double) wf[i] * x[i]);
        }
        assertThat((double) BlockCodecs.get(t).dot(ws, 0, x, 0, n)).isCloseTo(ref, within(1e-5 * mag + 1e-30));
    }

    @Property(tries = 60, seed = "20261124")
    void reconstructionErrorIsBoundedOnGaussianRows(@ForAll("weightTypes") GgmlType t, @ForAll boolean withImportance,
                                                   @ForAll @IntRange(min = 1, max = 4) int sb, @ForAll long seed) {
        int n = len(sb);
        float[] w = row(Kind.GAUSSIAN, n, seed);
        float[] imp = withImportance ? importance(n, seed + 7) : null;
        float[] y = dequantize(t, quantize(t, w, imp), n);
        double se = 0, ss = 0;
        for (int i = 0; i < n; i++) {
            se += (double) (w[i] - y[i]) * (w[i] - y[i]);
            ss += (double) w[i] * w[i];
        }
        // llama.cpp's own relative RMS errors on the tiny-llama fixtures, times 1.5 (random importance can hurt)
        double bound = 1.5 * switch (t) {
            case Q8_0 -> 0.0053;
            case Q4_0 -> 0.086;
            case Q4_1 -> 0.078;
            case Q5_0 -> 0.043;
            case Q5_1 -> 0.038;
            case Q2_K -> 0.30;
            case Q3_K -> 0.15;
            case Q4_K -> 0.071;
            case Q5_K -> 0.036;
            case Q6_K -> 0.018;
            case IQ4_NL -> 0.076;
            default -> throw new IllegalArgumentException(t.name());
        };
        assertThat(Math.sqrt(se / ss)).isLessThan(bound);
    }

    @Property(tries = 40, seed = "20261124")
    void linearFormatsAreIdempotentAndOthersDoNotDrift(@ForAll("weightTypes") GgmlType t, @ForAll Kind k,
                                                       @ForAll @IntRange(min = 1, max = 2) int sb, @ForAll long seed) {
        int n = len(sb);
        float[] w = row(k, n, seed);
        MemorySegment q1 = quantize(t, w, null);
        float[] y1 = dequantize(t, q1, n);
        MemorySegment q2 = quantize(t, y1, null);
        boolean idempotent = switch (t) {
            case Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 -> true;
            default -> false; // k-quants and IQ4_NL re-run a scale search, which may pick another grid
        };
        // with |w| ~ 1e-30 the fp16 scale underflows to 0 while the quants do not: a format limit
        if (idempotent && k != Kind.SUBNORMAL && k != Kind.TINY) {
            assertThat(q2.toArray(ValueLayout.JAVA_BYTE)).isEqualTo(q1.toArray(ValueLayout.JAVA_BYTE));
        } else {
            float[] y2 = dequantize(t, q2, n);
            double e1 = 0, e2 = 0;
            for (int i = 0; i < n; i++) {
                e1 += (double) (w[i] - y1[i]) * (w[i] - y1[i]);
                e2 += (double) (y1[i] - y2[i]) * (y1[i] - y2[i]);
            }
            assertThat(e2).isLessThanOrEqualTo(1.0001 * e1 + 1e-60);
        }
    }

    @Property(tries = 40, seed = "20261124")
    void zeroRowsGiveZeroWeightsAndDots(@ForAll("weightTypes") GgmlType t, @ForAll boolean withImportance,
                                        @ForAll @IntRange(min = 1, max = 3) int sb, @ForAll long seed) {
        int n = len(sb);
        float[] z = new float[n];
        MemorySegment ws = quantize(t, z, withImportance ? importance(n, seed) : null);
        for (float v : dequantize(t, ws, n)) assertThat(v == 0f).as("decoded weight %s", v).isTrue();
        float[] x = row(Kind.GAUSSIAN, n, seed);
        ActivationQuantizedCodec c = codec(t);
        assertThat(c.dot(ws, 0, x, 0, n)).isZero();
        MemorySegment xq = MemorySegment.ofArray(new byte[(int) c.activationBytes(n)]);
        c.quantizeActivations(x, 0, n, xq, 0);
        assertThat(c.dotQuantized(ws, 0, xq, 0, n)).isZero();
    }

    @Property(tries = 30, seed = "20261124")
    void offsetsAreHonoured(@ForAll("weightTypes") GgmlType t, @ForAll Kind k, @ForAll boolean withImportance, @ForAll long seed) {
        int n = 512, pad = 3;
        float[] w = row(k, n, seed);
        float[] shifted = new float[n + pad];
        System.arraycopy(w, 0, shifted, pad, n);
        float[] imp = withImportance ? importance(n, seed) : null;
        long bytes = t.bytesFor(n);
        MemorySegment a = MemorySegment.ofArray(new byte[(int) bytes]);
        MemorySegment b = MemorySegment.ofArray(new byte[(int) bytes + 11]);
        Throwable ea = org.assertj.core.api.Assertions.catchThrowable(() -> BlockCodecs.get(t).quantize(w, 0, n, imp, a, 0));
        Throwable eb = org.assertj.core.api.Assertions.catchThrowable(() -> BlockCodecs.get(t).quantize(shifted, pad, n, imp, b, 11));
        if (ea != null || eb != null) {
            // degenerate rows (e.g. 1e-30 weights whose squares underflow) give NaN scales, refused like llama-quantize does
            assertThat(ea).isInstanceOf(LatheException.class).hasMessageContaining("not finite");
            assertThat(eb).isInstanceOf(LatheException.class);
            return;
        }
        assertThat(b.asSlice(11).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(a.toArray(ValueLayout.JAVA_BYTE));
        float[] y = new float[n + 5];
        BlockCodecs.get(t).dequantize(b, 11, y, 5, n);
        assertThat(Arrays.copyOfRange(y, 5, n + 5)).isEqualTo(dequantize(t, a, n));
    }

    @Property(tries = 60, seed = "20261124")
    void activationQuantizationIsWithinHalfAStep(@ForAll("activationTypes") GgmlType at, @ForAll Kind k,
                                                 @ForAll @IntRange(min = 1, max = 3) int sb, @ForAll long seed) {
        int n = len(sb);
        float[] x = row(k == Kind.SUBNORMAL ? Kind.TINY : k, n, seed);
        MemorySegment q = MemorySegment.ofArray(new byte[(int) at.bytesFor(n)]);
        ((ActivationQuantizer) BlockCodecs.get(at)).quantizeActivations(x, 0, n, q, 0);
        double[] v = activationValues(at, q, n);
        int bs = at.blockSize;
        for (int b = 0; b < n / bs; b++) {
            double amax = 0;
            for (int j = 0; j < bs; j++) amax = Math.max(amax, Math.abs(x[b * bs + j]));
            // the stored scale is about amax/127; fp16 rounding of d adds a relative 2^-11 per step
            double step = amax / 127 * (1 + 1e-3);
            if (at != GgmlType.Q8_K && amax / 127 < 0x1p-14) continue; // fp16 scale underflows: format limit
            for (int j = 0; j < bs; j++) {
                assertThat(Math.abs(v[b * bs + j] - x[b * bs + j])).isLessThanOrEqualTo(step * 0.5 + amax * 1e-3 + 1e-37);
            }
            long sum = 0;
            for (int j = 0; j < bs; j++) sum += q.get(ValueLayout.JAVA_BYTE, (long) b * at.typeSize + (at == GgmlType.Q8_K ? 4 : at == GgmlType.Q8_1 ? 4 : 2) + j);
            if (at == GgmlType.Q8_1) {
                float d = Float.float16ToFloat(q.get(I16, 36L * b));
                float s = Float.float16ToFloat(q.get(I16, 36L * b + 2));
                // s = fp16(d_float * sum); d_float is within fp16 rounding of the stored d
                if (Math.abs((double) d * sum) < 65000) { // else s overflows fp16, in llama.cpp too
                    assertThat((double) s).isCloseTo((double) d * sum, within(Math.abs(d * sum) * 2e-3 + 1e-30));
                }
            }
            if (at == GgmlType.Q8_K) {
                for (int g = 0; g < 16; g++) {
                    int gs = 0;
                    for (int j = 0; j < 16; j++) gs += q.get(ValueLayout.JAVA_BYTE, 292L * b + 4 + 16 * g + j);
                    assertThat((int) q.get(I16, 292L * b + 260 + 2 * g)).isEqualTo(gs);
                }
            }
        }
        if (at != GgmlType.Q8_0) {
            // for Q8_1 and Q8_K quantize() is the CPU activation path itself
            MemorySegment viaQuantize = MemorySegment.ofArray(new byte[(int) at.bytesFor(n)]);
            BlockCodecs.get(at).quantize(x, 0, n, null, viaQuantize, 0);
            assertThat(viaQuantize.toArray(ValueLayout.JAVA_BYTE)).isEqualTo(q.toArray(ValueLayout.JAVA_BYTE));
        }
    }

    @Property(tries = 30, seed = "20261124")
    void nonFiniteInputIsRejected(@ForAll("weightTypes") GgmlType t, @ForAll @IntRange(min = 0, max = 511) int at,
                                  @ForAll @IntRange(min = 0, max = 2) int which) {
        float[] w = row(Kind.GAUSSIAN, 512, at);
        w[at] = which == 0 ? Float.NaN : which == 1 ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY;
        BlockCodec c = BlockCodecs.get(t);
        MemorySegment dst = MemorySegment.ofArray(new byte[(int) t.bytesFor(512)]);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> c.quantize(w, 0, 512, null, dst, 0))
                .isInstanceOf(LatheException.class).hasMessageContaining(t.name()).hasMessageContaining("index " + at);
        ActivationQuantizedCodec a = codec(t);
        MemorySegment xq = MemorySegment.ofArray(new byte[(int) a.activationBytes(512)]);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> a.quantizeActivations(w, 0, 512, xq, 0))
                .isInstanceOf(LatheException.class).hasMessageContaining("non-finite");
    }
}
