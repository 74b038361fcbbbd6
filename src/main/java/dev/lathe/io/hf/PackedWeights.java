package dev.lathe.io.hf;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lathe.LatheException;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.model.PackedIntLinear;
import dev.lathe.model.Parallel;
import dev.lathe.model.TensorNames;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Recognises compressed-tensors' {@code pack-quantized} weights in an HF checkpoint ({@code X.weight_packed},
 * {@code X.weight_scale}, optional {@code X.weight_zero_point}, {@code X.weight_shape}; bits, group size and
 * symmetry from config.json's {@code quantization_config}) and turns them into {@link PackedIntLinear}s.
 */
final class PackedWeights {
    record Entry(String hfBase, SafetensorsFile file) {}

    private final Path config;
    private final int bits, group;
    private final boolean symmetric;
    final Map<String, Entry> entries;

    private PackedWeights(Path config, int bits, int group, boolean symmetric, Map<String, Entry> entries) {
        this.config = config;
        this.bits = bits;
        this.group = group;
        this.symmetric = symmetric;
        this.entries = entries;
    }

    /** The packed weights of the shards under canonical names (empty when config.json declares none). */
    static PackedWeights scan(Path configPath, JsonNode cfg, List<SafetensorsFile> files) {
        JsonNode q = cfg.path("quantization_config");
        Map<String, Entry> m = new LinkedHashMap<>();
        boolean any = false;
        for (SafetensorsFile f : files) for (String n : f.entries().keySet()) any |= n.endsWith(".weight_packed");
        if (!any) return new PackedWeights(configPath, 0, 0, true, m);
        if (!q.path("quant_method").asText("").equals("compressed-tensors") || !q.path("format").asText("").equals("pack-quantized")) {
            throw new LatheException(configPath, "weights are packed but quantization_config is not compressed-tensors pack-quantized");
        }
        JsonNode groups = q.path("config_groups");
        if (!groups.isObject() || groups.size() != 1) throw new LatheException(configPath, "quantization_config: exactly one config group is supported");
        JsonNode w = groups.elements().next().path("weights");
        if (!w.path("type").asText("int").equals("int")) throw new LatheException(configPath, "quantization_config: only integer weights are supported");
        int bits = w.path("num_bits").asInt(0);
        String strategy = w.path("strategy").asText("");
        int group = strategy.equals("group") ? w.path("group_size").asInt(0) : strategy.equals("channel") ? -1 : 0;
        if (bits < 1 || bits > 8 || group == 0) throw new LatheException(configPath, "quantization_config: unsupported weights scheme " + w);
        for (SafetensorsFile f : files) {
            for (String n : f.entries().keySet()) {
                if (!n.endsWith(".weight_packed")) continue;
                String base = n.substring(0, n.length() - "_packed".length());
                String c = TensorNames.hfToGguf(base);
                if (c == null) throw new LatheException(f.path(), "packed tensor '" + n + "' is not part of a LLaMA-family model");
                m.put(c, new Entry(n.substring(0, n.length() - ".weight_packed".length()), f));
            }
        }
        return new PackedWeights(configPath, bits, group, w.path("symmetric").asBoolean(true), m);
    }

    boolean has(String canonical) {
        return entries.containsKey(canonical);
    }

    private Tensor part(Entry e, String suffix, boolean required) {
        String n = e.hfBase() + "." + suffix;
        if (!e.file().entries().containsKey(n)) {
            if (!required) return null;
            throw new LatheException(e.file().path(), "packed weight '" + e.hfBase() + "' has no '" + suffix + "'");
        }
        return e.file().tensor(n);
    }

    PackedIntLinear linear(String canonical, Parallel pool) {
        Entry e = entries.get(canonical);
        int[] shape = TensorOps.toInts(part(e, "weight_shape", true));
        if (shape.length != 2 || shape[0] < 1 || shape[1] < 1) throw new LatheException(e.file().path(), e.hfBase() + ".weight_shape is not [out, in]");
        int out = shape[0], in = shape[1];
        int g = group == -1 ? in : group;
        Tensor packed = part(e, "weight_packed", true);
        if (packed.numElements() != (long) out * PackedIntLinear.wordsFor(in, bits)) {
            throw new LatheException(e.file().path(), e.hfBase() + ".weight_packed has " + packed.numElements() + " words for [" + out + ", " + in + "] at " + bits + " bits");
        }
        float[] scales = TensorOps.toFloats(part(e, "weight_scale", true));
        int[] zeros = null;
        if (!symmetric) {
            Tensor zp = part(e, "weight_zero_point", true);
            int groups = in / Math.max(1, g);
            int[] words = TensorOps.toInts(zp);
            int wordsPerCol = PackedIntLinear.wordsFor(out, bits);
            if (words.length != wordsPerCol * groups) throw new LatheException(e.file().path(), e.hfBase() + ".weight_zero_point has a wrong size");
            zeros = new int[out * groups];
            int[] col = new int[wordsPerCol], vals = new int[out];
            for (int j = 0; j < groups; j++) {
                for (int w = 0; w < wordsPerCol; w++) col[w] = words[w * groups + j];
                PackedIntLinear.unpack(col, 0, out, bits, vals, 0);
                for (int r = 0; r < out; r++) zeros[r * groups + j] = vals[r];
            }
        }
        try {
            return new PackedIntLinear(out, in, bits, g, TensorOps.toInts(packed), scales, zeros, pool);
        } catch (LatheException ex) {
            throw new LatheException(e.file().path(), e.hfBase() + ": " + ex.getMessage(), ex);
        }
    }

    /** [out, in] from the stored weight_shape, without unpacking anything. */
    long[] shape(String canonical) {
        Entry e = entries.get(canonical);
        int[] shape = TensorOps.toInts(part(e, "weight_shape", true));
        if (shape.length != 2 || shape[0] < 1 || shape[1] < 1) throw new LatheException(e.file().path(), e.hfBase() + ".weight_shape is not [out, in]");
        return new long[]{shape[0], shape[1]};
    }

    /** The decoded weights as an F32 tensor (for tools that read tensors rather than run layers). */
    Tensor tensor(String canonical) {
        PackedIntLinear l = linear(canonical, Parallel.common());
        return TensorOps.viewFloats(canonical, new long[]{l.outFeatures(), l.inFeatures()}, l.dequantize());
    }
}
