package dev.lathe.tensor.quant;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * Vector API building blocks of the integer block dot products: 16 signed bytes at a time are widened to
 * int lanes and multiplied; per-block integer sums stay in int lanes and are scaled into a float vector
 * accumulator (no horizontal reduction per block, as in ggml's AVX kernels).
 */
final class Kernels {
    private Kernels() {}

    static final VectorSpecies<Byte> B16 = ByteVector.SPECIES_128;
    static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED.length() > 16 ? IntVector.SPECIES_512 : IntVector.SPECIES_PREFERRED;
    static final VectorSpecies<Float> F = VectorSpecies.of(float.class, I.vectorShape());
    /** Parts of 16 byte lanes per int vector. */
    static final int PARTS = 16 / I.length();
    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    /** 16 short lanes (256 bits), used with AVX-512 int vectors: widening 16 shorts gives one int vector. */
    static final VectorSpecies<Short> S16 = jdk.incubator.vector.ShortVector.SPECIES_256;

    /** 16 signed bytes sign-extended to 16 short lanes. */
    static jdk.incubator.vector.ShortVector widenS(ByteVector v) {
        return (jdk.incubator.vector.ShortVector) v.convertShape(VectorOperators.B2S, S16, 0);
    }

    /** 16 short lanes sign-extended to int lanes (one vector when {@code I} has 16 lanes). */
    static IntVector widenI(jdk.incubator.vector.ShortVector v) {
        return (IntVector) v.convertShape(VectorOperators.S2I, I, 0);
    }

    static ByteVector load16(MemorySegment s, long off) {
        return ByteVector.fromMemorySegment(B16, s, off, LE);
    }

    static IntVector widen(ByteVector v, int part) {
        return (IntVector) v.convertShape(VectorOperators.B2I, I, part);
    }

    /**
     * Lane-wise products of 16 signed bytes, summed into I.length() int lanes. Kept tiny (no loop) so C2
     * always inlines it: a vector crossing a non-inlined call is boxed, which is 20-50x slower.
     */
    static IntVector mul16(ByteVector a, ByteVector b) {
        return PARTS == 1 ? widen(a, 0).mul(widen(b, 0)) : mulParts(a, b);
    }

    private static IntVector mulParts(ByteVector a, ByteVector b) {
        IntVector s = widen(a, 0).mul(widen(b, 0));
        for (int p = 1; p < PARTS; p++) s = s.add(widen(a, p).mul(widen(b, p)));
        return s;
    }

    /** Part {@code part} of 16 bytes, zero-extended to int lanes. */
    static IntVector uwiden(ByteVector v, int part) {
        // sign-extend then mask: C2 intrinsifies B2I for every shape, ZERO_EXTEND_B2I not always
        return widen(v, part).and(0xFF);
    }

    /**
     * acc + float(a) * float(b) over 16 signed byte lanes. The products and their per-lane sums are exact
     * in float (|a*b| <= 2^14, a few terms per lane), so this is the integer dot of ggml_vec_dot_*,
     * computed with int-to-float conversions and FMAs, which run faster than 32-bit integer multiplies.
     */
    static FloatVector mulf(ByteVector a, ByteVector b, FloatVector acc) {
        if (PARTS == 1) return f(widen(a, 0)).fma(f(widen(b, 0)), acc);
        for (int p = 0; p < PARTS; p++) acc = f(widen(a, p)).fma(f(widen(b, p)), acc);
        return acc;
    }

    /** acc + float((q >>> shift) & mask) * float(x) over 16 lanes (q zero-extended bits, x signed). */
    static FloatVector mulBitsf(ByteVector q, int shift, int mask, ByteVector x, FloatVector acc) {
        if (PARTS == 1) return f(widen(q, 0).lanewise(VectorOperators.LSHR, shift).and(mask)).fma(f(widen(x, 0)), acc);
        for (int p = 0; p < PARTS; p++) acc = f(widen(q, p).lanewise(VectorOperators.LSHR, shift).and(mask)).fma(f(widen(x, p)), acc);
        return acc;
    }

    static FloatVector f(IntVector v) {
        return (FloatVector) v.convert(VectorOperators.I2F, 0);
    }

    static FloatVector zero() {
        return FloatVector.zero(F);
    }

    /** Products of ((q >>> shift) & mask) with the signed activations x, 16 lanes summed into I.length() lanes. */
    static IntVector mulBits(ByteVector q, int shift, int mask, ByteVector x) {
        return PARTS == 1 ? widen(q, 0).lanewise(VectorOperators.LSHR, shift).and(mask).mul(widen(x, 0)) : mulBitsParts(q, shift, mask, x);
    }

    private static IntVector mulBitsParts(ByteVector q, int shift, int mask, ByteVector x) {
        IntVector s = widen(q, 0).lanewise(VectorOperators.LSHR, shift).and(mask).mul(widen(x, 0));
        for (int p = 1; p < PARTS; p++) s = s.add(widen(q, p).lanewise(VectorOperators.LSHR, shift).and(mask).mul(widen(x, p)));
        return s;
    }

    /** acc + float(q) * x[xo .. xo + 16) for 16 signed byte lanes. */
    static FloatVector qx(ByteVector q, float[] x, int xo, FloatVector acc) {
        if (PARTS == 1) return ((FloatVector) widen(q, 0).convert(VectorOperators.I2F, 0)).fma(FloatVector.fromArray(F, x, xo), acc);
        return qxParts(q, x, xo, acc);
    }

    private static FloatVector qxParts(ByteVector q, float[] x, int xo, FloatVector acc) {
        for (int p = 0; p < PARTS; p++) {
            acc = ((FloatVector) widen(q, p).convert(VectorOperators.I2F, 0)).fma(FloatVector.fromArray(F, x, xo + p * I.length()), acc);
        }
        return acc;
    }

    /** acc + float((q >>> shift) & mask) * x[xo .. xo + 16), q zero-extended from 16 bytes. */
    static FloatVector bitsx(ByteVector q, int shift, int mask, float[] x, int xo, FloatVector acc) {
        if (PARTS == 1) {
            return ((FloatVector) widen(q, 0).lanewise(VectorOperators.LSHR, shift).and(mask).convert(VectorOperators.I2F, 0))
                    .fma(FloatVector.fromArray(F, x, xo), acc);
        }
        for (int p = 0; p < PARTS; p++) {
            acc = ((FloatVector) widen(q, p).lanewise(VectorOperators.LSHR, shift).and(mask).convert(VectorOperators.I2F, 0))
                    .fma(FloatVector.fromArray(F, x, xo + p * I.length()), acc);
        }
        return acc;
    }

    /** acc + x[xo .. xo + 16) summed into I.length() lanes. */
    static FloatVector xsum16(float[] x, int xo, FloatVector acc) {
        for (int p = 0; p < PARTS; p++) acc = acc.add(FloatVector.fromArray(F, x, xo + p * I.length()));
        return acc;
    }

    /**
     * Decodes 16 quants to floats for the prefill panels: {@code q = ((lo >>> loShift) & loMask) |
     * (((hi >>> hiShift) & hiMask) << hiBit)} (zero-extended bytes; hiMask 0: no high bits), then
     * {@code dst[o + j] = (q - off) * d - m} with one rounding, which is what the codecs' scalar
     * dequantization computes ({@code (q - off) * d} is exact for their fp16-times-small-int scales).
     */
    static void decode16(ByteVector lo, int loShift, int loMask, ByteVector hi, int hiShift, int hiMask, int hiBit, int off,
                         float d, float m, float[] dst, int o) {
        FloatVector vd = FloatVector.broadcast(F, d), vm = FloatVector.broadcast(F, -m);
        for (int p = 0; p < PARTS; p++) {
            IntVector q = widen(lo, p).lanewise(VectorOperators.LSHR, loShift).and(loMask);
            if (hiMask != 0) q = q.or(widen(hi, p).lanewise(VectorOperators.LSHR, hiShift).and(hiMask).lanewise(VectorOperators.LSHL, hiBit));
            f(q.sub(off)).fma(vd, vm).intoArray(dst, o + p * I.length());
        }
    }

    /** {@link #decode16} bounds: {@code n} values at {@code dstOff} must fit. */
    static void checkDecode(dev.lathe.tensor.GgmlType t, int n, float[] dst, int dstOff, int extra) {
        QuantMath.checkBlocks(t, n);
        if (dstOff < 0 || dstOff + (long) n + extra > dst.length) throw new IndexOutOfBoundsException("decode " + dstOff + "+" + n + " outside array of " + dst.length);
    }

    static void checkFloatDot(dev.lathe.tensor.GgmlType t, float[] x, int xOff, int n) {
        QuantMath.checkBlocks(t, n);
        if (xOff < 0 || xOff + (long) n > x.length) throw new IndexOutOfBoundsException("activations " + xOff + "+" + n + " outside array of " + x.length);
    }

    static FloatVector fma(IntVector sumi, float d, FloatVector acc) {
        return ((FloatVector) sumi.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F, d), acc);
    }

    static float sum(FloatVector acc) {
        return dev.lathe.tensor.VectorKernels.sum(acc);
    }

    private static final jdk.incubator.vector.VectorSpecies<Long> L128 = jdk.incubator.vector.LongVector.SPECIES_128;
    /** SPREAD[b]: byte i of the long is 0x10 when bit i of b is set. */
    private static final long[] SPREAD = new long[256];

    static {
        for (int b = 0; b < 256; b++) {
            long v = 0;
            for (int i = 0; i < 8; i++) if ((b >> i & 1) != 0) v |= 0x10L << (8 * i);
            SPREAD[b] = v;
        }
    }

    /** 16 byte lanes: lane j is 0x10 when bit j of {@code bits} is set, else 0. */
    static ByteVector spread(int bits) {
        return jdk.incubator.vector.LongVector.zero(L128).withLane(0, SPREAD[bits & 0xFF]).withLane(1, SPREAD[(bits >>> 8) & 0xFF]).reinterpretAsBytes();
    }

    static void checkDot(dev.lathe.tensor.GgmlType t, int n) {
        QuantMath.checkBlocks(t, n);
    }
}
