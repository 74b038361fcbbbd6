package dev.lathe.tensor;

import dev.lathe.LatheException;

import java.lang.foreign.MemorySegment;
import java.util.EnumMap;
import java.util.Map;

/** Registry of the {@link BlockCodec} for every supported type. */
public final class BlockCodecs {
    private static final Map<GgmlType, BlockCodec> CODECS = new EnumMap<>(GgmlType.class);

    static {
        register(new F32Codec());
        register(new F16Codec());
        register(new Bf16Codec());
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
