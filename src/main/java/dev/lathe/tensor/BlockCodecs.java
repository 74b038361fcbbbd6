package dev.lathe.tensor;

import dev.lathe.LatheException;

import java.lang.foreign.MemorySegment;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/** Registry of the {@link BlockCodec} for every supported type. */
public final class BlockCodecs {
    private static final Map<GgmlType, BlockCodec> CODECS = new EnumMap<>(GgmlType.class);

    static {
        register(new F32Codec());
        register(new F16Codec());
        register(new Bf16Codec());
        register(new dev.lathe.tensor.quant.Q8_0Codec());
        register(new dev.lathe.tensor.quant.Q4_0Codec());
        register(new dev.lathe.tensor.quant.Q4_1Codec());
        register(new dev.lathe.tensor.quant.Q5_0Codec());
        register(new dev.lathe.tensor.quant.Q5_1Codec());
        register(new dev.lathe.tensor.quant.Q2_KCodec());
        register(new dev.lathe.tensor.quant.Q3_KCodec());
        register(new dev.lathe.tensor.quant.Q4_KCodec());
        register(new dev.lathe.tensor.quant.Q5_KCodec());
        register(new dev.lathe.tensor.quant.Q6_KCodec());
        register(new dev.lathe.tensor.quant.IQ4_NLCodec());
        register(new dev.lathe.tensor.quant.Q8_1Codec());
        register(new dev.lathe.tensor.quant.Q8_KCodec());
    }

    /** Weight types Lathe can quantize to (llama-quantize's targets implemented here), smallest first. */
    private static final List<GgmlType> WEIGHT_TYPES = List.of(
            GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_0, GgmlType.IQ4_NL, GgmlType.Q4_K, GgmlType.Q4_1,
            GgmlType.Q5_0, GgmlType.Q5_K, GgmlType.Q5_1, GgmlType.Q6_K, GgmlType.Q8_0,
            GgmlType.BF16, GgmlType.F16, GgmlType.F32);

    /** The types a weight tensor can be converted to (every registered type except the activation-only Q8_1 and Q8_K). */
    public static List<GgmlType> weightTypes() {
        return WEIGHT_TYPES;
    }

    /** Bits per weight of a type, including its scales (e.g. 4.5 for Q4_0 and Q4_K, 8.5 for Q8_0). */
    public static double bitsPerWeight(GgmlType t) {
        return t.bitsPerWeight();
    }

    /** The codec of a quantized weight type with llama.cpp's integer dot product, or null for F32/F16/BF16. */
    public static ActivationQuantizedCodec activationQuantized(GgmlType t) {
        return get(t) instanceof ActivationQuantizedCodec a ? a : null;
    }

    private BlockCodecs() {}

    public static synchronized void register(BlockCodec c) {
        CODECS.put(c.type(), c);
    }

    public static boolean supports(GgmlType t) {
        return CODECS.containsKey(t);
    }

    public static BlockCodec get(GgmlType t) {
        BlockCodec c = CODECS.get(t);
        if (c == null) throw new LatheException("tensor type " + t + " is not supported");
        return c;
    }

    static final class F32Codec implements BlockCodec {
        public GgmlType type() { return GgmlType.F32; }

        public void dequantize(MemorySegment src, long offset, float[] dst, int dstOff, int n) {
            MemorySegment.copy(src, Tensor.F32_LE, offset, dst, dstOff, n);
        }

        public void quantize(float[] src, int srcOff, int n, float[] importance, MemorySegment dst, long offset) {
            MemorySegment.copy(src, srcOff, dst, Tensor.F32_LE, offset, n);
        }

        public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
            return VectorKernels.dotF32(w, offset, x, xOff, n);
        }
    }

    static final class F16Codec implements BlockCodec {
        public GgmlType type() { return GgmlType.F16; }

        public void dequantize(MemorySegment src, long offset, float[] dst, int dstOff, int n) {
            for (int i = 0; i < n; i++) dst[dstOff + i] = Float.float16ToFloat(src.get(Tensor.I16_LE, offset + 2L * i));
        }

        public void quantize(float[] src, int srcOff, int n, float[] importance, MemorySegment dst, long offset) {
            for (int i = 0; i < n; i++) dst.set(Tensor.I16_LE, offset + 2L * i, Float.floatToFloat16(src[srcOff + i]));
        }

        public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
            return VectorKernels.dotF16(w, offset, x, xOff, n);
        }
    }

    static final class Bf16Codec implements BlockCodec {
        public GgmlType type() { return GgmlType.BF16; }

        public void dequantize(MemorySegment src, long offset, float[] dst, int dstOff, int n) {
            for (int i = 0; i < n; i++) dst[dstOff + i] = Float16.bf16ToFloat(src.get(Tensor.I16_LE, offset + 2L * i));
        }

        public void quantize(float[] src, int srcOff, int n, float[] importance, MemorySegment dst, long offset) {
            for (int i = 0; i < n; i++) dst.set(Tensor.I16_LE, offset + 2L * i, Float16.floatToBf16(src[srcOff + i]));
        }

        public float dot(MemorySegment w, long offset, float[] x, int xOff, int n) {
            return VectorKernels.dotBf16(w, offset, x, xOff, n);
        }
    }
}
