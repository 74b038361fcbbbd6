package dev.lathe.compress;

import dev.lathe.io.AtomicOutput;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A {@link Modifier} that changes nothing and records the importance matrix of every projection (sum of
 * x² per input column over all calibration tokens, token count and matmul call count), and writes it in
 * llama-imatrix's legacy binary format (llama.cpp c392e509): i32 n_entries; per entry i32 name length,
 * name, i32 ncall, i32 nval, f32 values (mean of x² per column times ncall); then i32 chunk count and the
 * dataset name. {@link dev.lathe.tensor.quant.Imatrix#readLegacy} reads it back.
 */
public final class ImatrixCollector implements Modifier {
    private final Map<String, InputStats> entries = new LinkedHashMap<>();
    private int calls;

    @Override
    public String name() {
        return "imatrix";
    }

    @Override
    public void applyToBlock(BlockContext ctx) {
        Map<Proj.Input, InputStats> st = ctx.stats(false);
        for (Proj p : Proj.values()) entries.put(p.tensorName(ctx.layer()), st.get(p.input));
        for (InputStats s : st.values()) calls = Math.max(calls, s.calls);
    }

    /** Tensor name -> statistics, in model order. */
    public Map<String, InputStats> entries() {
        return entries;
    }

    /** Mean of x² per column (what llama-quantize uses) for each tensor. */
    public Map<String, float[]> importance() {
        Map<String, float[]> m = new LinkedHashMap<>();
        entries.forEach((k, v) -> m.put(k, v.importance()));
        return m;
    }

    public void writeLegacy(Path target, String dataset) {
        AtomicOutput.write(target, out -> {
            out.i32(entries.size());
            for (Map.Entry<String, InputStats> e : entries.entrySet()) {
                byte[] name = e.getKey().getBytes(StandardCharsets.UTF_8);
                out.i32(name.length);
                out.bytes(name);
                InputStats s = e.getValue();
                out.i32(s.calls);
                out.i32(s.cols);
                for (int j = 0; j < s.cols; j++) out.f32((float) (s.sumSq[j] / s.tokens) * s.calls);
            }
            out.i32(calls);
            byte[] d = (dataset == null ? "" : dataset).getBytes(StandardCharsets.UTF_8);
            out.i32(d.length);
            out.bytes(d);
        });
    }
}
