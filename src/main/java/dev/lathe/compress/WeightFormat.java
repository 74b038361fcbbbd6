package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;

import java.util.Locale;

/** What a weight matrix is quantized to: a llama.cpp block type, or generic integers with group scales. */
public sealed interface WeightFormat {

    /** Columns that share quantization parameters (a block or group); the whole row for per-channel. */
    int groupSize(int cols);

    /** Bits per weight including scales (and zero points), for reporting. */
    double bitsPerWeight(int cols);

    /** A GGUF block type ({@code Q4_K}, {@code Q8_0}, ... also F16/F32). */
    record Gguf(GgmlType type) implements WeightFormat {
        public Gguf {
            if (!BlockCodecs.weightTypes().contains(type)) throw new LatheException("cannot quantize weights to " + type + "; supported: " + BlockCodecs.weightTypes());
        }

        @Override
        public int groupSize(int cols) {
            return type.blockSize;
        }

        @Override
        public double bitsPerWeight(int cols) {
            return BlockCodecs.bitsPerWeight(type);
        }

        @Override
        public String toString() {
            return type.name();
        }
    }

    /**
     * Signed {@code bits}-bit integers (compressed-tensors' convention: range [-2^(b-1), 2^(b-1)-1]) with
     * one scale per {@code group} columns (group -1 = one per output channel), symmetric (zero point 0) or
     * asymmetric (integer zero point in the same range).
     */
    record Int(int bits, int group, boolean symmetric) implements WeightFormat {
        public Int {
            if (bits < 2 || bits > 8) throw new LatheException("integer quantization needs 2..8 bits, got " + bits);
            if (group != -1 && group < 1) throw new LatheException("group size must be positive or -1 (per channel), got " + group);
        }

        public int qmin() {
            return -(1 << (bits - 1));
        }

        public int qmax() {
            return (1 << (bits - 1)) - 1;
        }

        @Override
        public int groupSize(int cols) {
            return group == -1 ? cols : group;
        }

        @Override
        public double bitsPerWeight(int cols) {
            int g = groupSize(cols);
            return bits + (16.0 + (symmetric ? 0 : bits)) / g;
        }

        @Override
        public String toString() {
            return "int" + bits + (group == -1 ? "" : "-g" + group) + (symmetric ? "" : "-asym");
        }
    }

    /**
     * Parses a type name: a GGUF type ({@code q4_0}, {@code Q4_K}, {@code f16}) or an integer format
     * {@code intB[-gG][-asym]} ({@code int4-g128}, {@code int8} = per channel, {@code int4-g32-asym}).
     */
    public static WeightFormat parse(String s) {
        String l = s.toLowerCase(Locale.ROOT);
        if (l.startsWith("int")) {
            String[] parts = l.split("-");
            int bits;
            try {
                bits = Integer.parseInt(parts[0].substring(3));
            } catch (NumberFormatException e) {
                throw new LatheException("bad integer format '" + s + "' (expected e.g. int4-g128, int8, int4-g32-asym)");
            }
            int group = -1;
            boolean sym = true;
            for (int i = 1; i < parts.length; i++) {
                if (parts[i].equals("asym")) sym = false;
                else if (parts[i].equals("sym")) sym = true;
                else if (parts[i].startsWith("g")) {
                    try {
                        group = Integer.parseInt(parts[i].substring(1));
                    } catch (NumberFormatException e) {
                        throw new LatheException("bad group size in '" + s + "'");
                    }
                } else throw new LatheException("bad integer format '" + s + "' (expected e.g. int4-g128, int8, int4-g32-asym)");
            }
            return new Int(bits, group, sym);
        }
        try {
            return new Gguf(GgmlType.valueOf(s.toUpperCase(Locale.ROOT)));
        } catch (IllegalArgumentException e) {
            throw new LatheException("unknown quantization type '" + s + "'");
        }
    }
}
