package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.io.Converter;
import dev.lathe.io.Progress;
import dev.lathe.io.gguf.GgufValue;
import dev.lathe.io.gguf.GgufWriter;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.WeightSource;

import java.nio.file.Path;
import java.util.Comparator;
import java.util.Map;

/**
 * Writes a quantized model as GGUF in llama-quantize's layout: the source's metadata (as
 * {@link Converter#ggufWriter} builds it, tokenizer included), {@code general.file_type} and
 * {@code general.quantization_version} last, tensors in llama-quantize's order, quantized weights from the
 * results (Q/K rows permuted to GGUF's interleaved layout when the source is a Hugging Face checkpoint),
 * everything else as stored (1-D tensors F32). Written atomically.
 */
public final class GgufOutput {
    private GgufOutput() {}

    public static GgufWriter writer(WeightSource src, QuantPlan plan, Map<String, QuantizedWeight> results, Map<String, GgufValue> extra) {
        Path fn = src.path().toAbsolutePath().getFileName();
        String name = fn == null ? "model" : fn.toString().replaceFirst("\\.(gguf|bin|safetensors)$", "");
        GgufWriter base = Converter.ggufWriter(src, dev.lathe.tensor.GgmlType.F32, name);
        ModelConfig c = src.config();
        String arch = c.arch().equals("qwen2") ? "qwen2" : "llama";
        boolean permute = c.ropeStyle() != Converter.ggufRopeStyle(arch);
        GgufWriter w = new GgufWriter();
        base.metadata().forEach((k, v) -> {
            if (!k.equals("general.file_type") && !k.equals("general.quantization_version")) w.set(k, v);
        });
        if (extra != null) extra.forEach(w::set);
        w.setU32("general.quantization_version", 2);
        if (plan.ftype() >= 0) w.setU32("general.file_type", plan.ftype());
        for (GgufWriter.TensorEntry e : base.tensors()) {
            QuantizedWeight q = results.get(e.name());
            if (q == null) {
                w.addTensor(e);
                continue;
            }
            if (!(q instanceof QuantizedWeight.Gguf g)) {
                throw new LatheException(src.path(), e.name() + " is quantized to " + q.getClass().getSimpleName() + ", which GGUF cannot store (use safetensors output)");
            }
            if (g.rows() * (long) g.cols() != dev.lathe.tensor.Tensor.numElements(e.shape())) {
                throw new IllegalStateException(e.name() + ": quantized shape differs");
            }
            int heads = e.name().endsWith(".attn_q.weight") ? c.nHeads() : e.name().endsWith(".attn_k.weight") ? c.nKvHeads() : 0;
            byte[] data = permute && heads > 0 ? permuteRows(g, heads, c.headDim(), c.ropeStyle() == RopeStyle.HALF) : g.data();
            w.addTensor(e.name(), g.type(), e.shape(), out -> out.bytes(data));
        }
        w.sortTensors(Comparator.comparing(GgufWriter.TensorEntry::name, Converter.LLAMA_QUANTIZE_ORDER));
        return w;
    }

    public static void write(WeightSource src, QuantPlan plan, Map<String, QuantizedWeight> results, Map<String, GgufValue> extra,
                             Path out, Progress progress) {
        writer(src, plan, results, extra).write(out, progress);
    }

    /** Q/K rows from the half-split (HF) layout to interleaved, per head (convert_hf_to_gguf.py's permute). */
    static byte[] permuteRows(QuantizedWeight.Gguf g, int heads, int headDim, boolean halfToInterleaved) {
        int rb = (int) g.type().bytesFor(g.cols());
        byte[] out = new byte[g.data().length];
        int half = headDim / 2;
        for (int r = 0; r < g.rows(); r++) {
            int h = r / headDim, j = r % headDim;
            int within = halfToInterleaved ? (j % 2) * half + j / 2 : (j % half) * 2 + j / half;
            int s = h * headDim + within;
            System.arraycopy(g.data(), s * rb, out, r * rb, rb);
        }
        return out;
    }
}
