package dev.lathe.compress;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lathe.LatheException;
import dev.lathe.io.Progress;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.io.hf.HfFolderWriter;
import dev.lathe.io.safetensors.SafetensorsWriter;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.PackedIntLinear;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.TensorOps;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Writes integer-quantized weights as a Hugging Face folder in compressed-tensors' {@code pack-quantized}
 * layout: for each quantized projection {@code X.weight_packed} (I32, values offset by 2^(b-1), packed densely
 * along the row), {@code X.weight_scale} (F32, {@code [out, in/group]}), {@code X.weight_zero_point} (I32,
 * packed along the output dimension; asymmetric only) and {@code X.weight_shape} (I32 {@code [out, in]});
 * everything else F32 under HF names; config.json with compressed-tensors' {@code quantization_config}.
 * Q/K rows are written in HF order. Each file is written atomically.
 */
public final class CompressedTensors {
    private CompressedTensors() {}

    public static void write(WeightSource src, QuantPlan plan, Map<String, QuantizedWeight> results, Path folder) {
        ModelConfig c = src.config();
        WeightFormat.Int fmt = null;
        for (QuantizedWeight q : results.values()) {
            if (q.isFloatVector()) continue;
            if (!(q instanceof QuantizedWeight.Int qi)) throw new LatheException(q.name() + " is a GGUF block type; compressed-tensors output holds integer formats only");
            if (fmt != null && !fmt.equals(qi.format())) throw new LatheException("compressed-tensors output needs one integer format, got " + fmt + " and " + qi.format());
            fmt = qi.format();
        }
        if (fmt == null) throw new LatheException("nothing was quantized");
        try {
            Files.createDirectories(folder);
        } catch (IOException e) {
            throw new LatheException(folder, "cannot create folder: " + e.getMessage(), e);
        }
        boolean permute = c.ropeStyle() != RopeStyle.HALF;
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        List<String> ignore = new ArrayList<>();
        for (String n : src.tensorNames()) {
            String hf = TensorNames.ggufToHf(n);
            if (hf == null) continue;
            if (n.equals(TensorNames.OUTPUT) && c.tiedEmbeddings()) continue;
            int heads = n.endsWith(".attn_q.weight") || n.endsWith(".attn_q.bias") ? c.nHeads()
                    : n.endsWith(".attn_k.weight") || n.endsWith(".attn_k.bias") ? c.nKvHeads() : 0;
            QuantizedWeight q = results.get(n);
            if (q == null || q.isFloatVector()) {
                var t = src.tensor(n);
                float[] v = q == null ? TensorOps.toFloats(t) : q.dequantize();
                if (permute && heads > 0) v = permuteRows(v, t.dims() == 1 ? 1 : (int) t.cols(), heads, c.headDim());
                float[] vv = v;
                entries.add(new SafetensorsWriter.Entry(hf, "F32", t.shape(), out -> { for (float f : vv) out.f32(f); }));
                if (t.dims() == 2 && !hf.equals("model.embed_tokens.weight")) ignore.add(hf.substring(0, hf.length() - ".weight".length()));
                continue;
            }
            QuantizedWeight.Int qi = (QuantizedWeight.Int) q;
            String base = hf.substring(0, hf.length() - ".weight".length());
            int rows = qi.rows(), cols = qi.cols(), ng = qi.groups(), bits = fmt.bits();
            int[] order = new int[rows];
            for (int r = 0; r < rows; r++) order[r] = permute && heads > 0 ? halfFromInterleaved(r, c.headDim()) : r;
            int wpr = PackedIntLinear.wordsFor(cols, bits);
            int[] words = new int[rows * wpr];
            int[] vals = new int[cols];
            float[] scales = new float[rows * ng];
            int[] zeros = new int[rows * ng];
            for (int r = 0; r < rows; r++) {
                int s = order[r];
                for (int j = 0; j < cols; j++) vals[j] = qi.q()[s * cols + j];
                PackedIntLinear.pack(vals, 0, cols, bits, words, r * wpr);
                for (int g = 0; g < ng; g++) {
                    scales[r * ng + g] = qi.scales()[s * ng + g];
                    zeros[r * ng + g] = qi.zeros()[s * ng + g];
                }
            }
            entries.add(new SafetensorsWriter.Entry(base + ".weight_packed", "I32", new long[]{rows, wpr}, out -> { for (int w : words) out.i32(w); }));
            entries.add(new SafetensorsWriter.Entry(base + ".weight_scale", "F32", new long[]{rows, ng}, out -> { for (float f : scales) out.f32(f); }));
            entries.add(new SafetensorsWriter.Entry(base + ".weight_shape", "I32", new long[]{2}, out -> { out.i32(rows); out.i32(cols); }));
            if (!fmt.symmetric()) {
                int wpc = PackedIntLinear.wordsFor(rows, bits);
                int[] zw = new int[wpc * ng];
                int[] col = new int[rows], cw = new int[wpc];
                for (int g = 0; g < ng; g++) {
                    for (int r = 0; r < rows; r++) col[r] = zeros[r * ng + g];
                    java.util.Arrays.fill(cw, 0);
                    PackedIntLinear.pack(col, 0, rows, bits, cw, 0);
                    for (int w = 0; w < wpc; w++) zw[w * ng + g] = cw[w];
                }
                entries.add(new SafetensorsWriter.Entry(base + ".weight_zero_point", "I32", new long[]{wpc, ng}, out -> { for (int w : zw) out.i32(w); }));
            }
        }
        Integer bos = null, eos = null;
        if (src.gguf().isPresent()) {
            GgufFile g = src.gguf().get();
            if (g.get("tokenizer.ggml.bos_token_id") != null) bos = (int) g.getLong("tokenizer.ggml.bos_token_id", 0);
            if (g.get("tokenizer.ggml.eos_token_id") != null) eos = (int) g.getLong("tokenizer.ggml.eos_token_id", 0);
        }
        HfFolderWriter.writeWeights(folder, entries, HfFolderWriter.DEFAULT_MAX_SHARD_BYTES, Map.of("format", "pt"), Progress.NONE);
        ObjectNode cfg = HfFolderWriter.configJson(c.withRopeStyle(RopeStyle.HALF), GgmlType.F32, bos, eos);
        cfg.set("quantization_config", quantizationConfig(cfg, fmt, ignore));
        HfFolderWriter.writeJson(folder.resolve("config.json"), cfg);
        src.hfFolder().ifPresent(f -> HfFolderWriter.copyTokenizerFiles(f, folder));
        src.gguf().flatMap(dev.lathe.tokenizer.Tokenizers::fromGguf).ifPresent(t -> dev.lathe.tokenizer.Tokenizers.writeHf(t, folder));
    }

    /** compressed-tensors' quantization_config for one integer weight scheme applied to every Linear. */
    static ObjectNode quantizationConfig(ObjectNode any, WeightFormat.Int f, List<String> ignore) {
        ObjectNode q = any.objectNode();
        ObjectNode group = q.putObject("config_groups").putObject("group_0");
        group.putArray("targets").add("Linear");
        ObjectNode w = group.putObject("weights");
        w.put("num_bits", f.bits());
        w.put("type", "int");
        w.put("symmetric", f.symmetric());
        w.put("strategy", f.group() == -1 ? "channel" : "group");
        if (f.group() == -1) w.putNull("group_size");
        else w.put("group_size", f.group());
        w.put("dynamic", false);
        w.putNull("actorder");
        w.put("observer", "minmax");
        group.putNull("input_activations");
        group.putNull("output_activations");
        q.put("format", "pack-quantized");
        var ig = q.putArray("ignore");
        ignore.forEach(ig::add);
        q.putNull("kv_cache_scheme");
        q.put("quant_method", "compressed-tensors");
        q.put("quantization_status", "compressed");
        return q;
    }

    /** Source row (interleaved GGUF layout) of HF row {@code r}, per head of {@code hd} rows. */
    static int halfFromInterleaved(int r, int hd) {
        int h = r / hd, j = r % hd, half = hd / 2;
        return h * hd + (j % half) * 2 + j / half;
    }

    private static float[] permuteRows(float[] v, int cols, int heads, int hd) {
        float[] out = new float[v.length];
        int rows = v.length / cols;
        for (int r = 0; r < rows; r++) System.arraycopy(v, halfFromInterleaved(r, hd) * cols, out, r * cols, cols);
        return out;
    }
}
