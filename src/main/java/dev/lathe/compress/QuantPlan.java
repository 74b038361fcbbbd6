package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Which format each weight matrix gets: the 2-D weights llama-quantize quantizes (token embedding, output
 * head, the seven projections of every block; norms and other 1-D tensors stay as they are). Made uniform
 * ({@link #uniform}) or with llama.cpp's per-tensor mixes ({@link #llamaCpp}, a Java port of
 * llama_tensor_get_type at llama.cpp c392e509, incl. its fallback types for row lengths a block type
 * cannot take). {@link #notes()} lists every fallback.
 *
 * @param ftype  llama.cpp's file type id for {@code general.file_type}, or -1 when none applies (integer formats)
 */
public record QuantPlan(String name, int ftype, Map<String, WeightFormat> formats, List<String> notes) {

    public QuantPlan {
        formats = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(formats));
        notes = List.copyOf(notes);
    }

    /** The format for {@code tensor}, or null when it is kept as stored. */
    public WeightFormat format(String tensor) {
        return formats.get(tensor);
    }

    /** The 2-D weights llama-quantize would quantize, in the order of the model. */
    public static List<String> quantizable(WeightSource src) {
        List<String> out = new ArrayList<>();
        ModelConfig c = src.config();
        out.add(TensorNames.TOKEN_EMBD);
        for (int l = 0; l < c.nLayers(); l++) for (Proj p : Proj.values()) out.add(p.tensorName(l));
        if (src.has(TensorNames.OUTPUT)) out.add(TensorNames.OUTPUT);
        return out;
    }

    /** Every quantizable weight in {@code f}; a GGUF type that cannot take a row length falls back as llama.cpp does. */
    public static QuantPlan uniform(WeightSource src, WeightFormat f) {
        Map<String, WeightFormat> m = new LinkedHashMap<>();
        List<String> notes = new ArrayList<>();
        for (String n : quantizable(src)) {
            // compressed-tensors quantizes the Linear layers of the blocks; embedding and head stay unquantized
            if (f instanceof WeightFormat.Int && (n.equals(TensorNames.TOKEN_EMBD) || n.equals(TensorNames.OUTPUT))) continue;
            long cols = src.tensor(n).cols();
            if (f instanceof WeightFormat.Gguf g) {
                m.put(n, new WeightFormat.Gguf(fallback(n, g.type(), cols, notes)));
            } else {
                if (cols % f.groupSize((int) cols) != 0) {
                    throw new LatheException(src.path(), "tensor " + n + " has rows of " + cols + ", not a multiple of the " + f + " group size");
                }
                m.put(n, f);
            }
        }
        int ftype = f instanceof WeightFormat.Gguf g ? pureFtype(g.type()) : -1;
        return new QuantPlan(f.toString(), ftype, m, notes);
    }

    /**
     * A plan with the given format per tensor (a measured mix); {@code general.file_type} is that of the GGUF
     * type holding the most weights.
     */
    public static QuantPlan of(WeightSource src, String name, Map<String, WeightFormat> formats, List<String> notes) {
        Map<GgmlType, Long> weights = new LinkedHashMap<>();
        for (Map.Entry<String, WeightFormat> e : formats.entrySet()) {
            if (!src.has(e.getKey())) throw new LatheException(src.path(), "the plan names no tensor of the model: " + e.getKey());
            if (e.getValue() instanceof WeightFormat.Gguf g) weights.merge(g.type(), src.tensor(e.getKey()).numElements(), Long::sum);
        }
        int ftype = weights.entrySet().stream().max(Map.Entry.comparingByValue()).map(e -> pureFtype(e.getKey())).orElse(-1);
        return new QuantPlan(name, ftype, formats, notes);
    }

    private static int pureFtype(GgmlType t) {
        return switch (t) {
            case F32 -> 0;
            case F16 -> 1;
            case Q4_0 -> 2;
            case Q4_1 -> 3;
            case Q8_0 -> 7;
            case Q5_0 -> 8;
            case Q5_1 -> 9;
            case Q2_K -> 10;
            case Q3_K -> 11;
            case Q4_K -> 14;
            case Q5_K -> 16;
            case Q6_K -> 18;
            case IQ4_NL -> 25;
            case BF16 -> 32;
            default -> -1;
        };
    }

    /** llama.cpp's file types Lathe can produce: name -> (id, default tensor type). */
    private record Ftype(int id, GgmlType base) {}

    private static final Map<String, Ftype> FTYPES = new LinkedHashMap<>();

    static {
        FTYPES.put("F32", new Ftype(0, GgmlType.F32));
        FTYPES.put("F16", new Ftype(1, GgmlType.F16));
        FTYPES.put("BF16", new Ftype(32, GgmlType.BF16));
        FTYPES.put("Q4_0", new Ftype(2, GgmlType.Q4_0));
        FTYPES.put("Q4_1", new Ftype(3, GgmlType.Q4_1));
        FTYPES.put("Q5_0", new Ftype(8, GgmlType.Q5_0));
        FTYPES.put("Q5_1", new Ftype(9, GgmlType.Q5_1));
        FTYPES.put("Q8_0", new Ftype(7, GgmlType.Q8_0));
        FTYPES.put("Q2_K", new Ftype(10, GgmlType.Q2_K));
        FTYPES.put("Q2_K_S", new Ftype(21, GgmlType.Q2_K));
        FTYPES.put("Q3_K_S", new Ftype(11, GgmlType.Q3_K));
        FTYPES.put("Q3_K_M", new Ftype(12, GgmlType.Q3_K));
        FTYPES.put("Q3_K_L", new Ftype(13, GgmlType.Q3_K));
        FTYPES.put("Q4_K_S", new Ftype(14, GgmlType.Q4_K));
        FTYPES.put("Q4_K_M", new Ftype(15, GgmlType.Q4_K));
        FTYPES.put("Q5_K_S", new Ftype(16, GgmlType.Q5_K));
        FTYPES.put("Q5_K_M", new Ftype(17, GgmlType.Q5_K));
        FTYPES.put("Q6_K", new Ftype(18, GgmlType.Q6_K));
        FTYPES.put("IQ4_NL", new Ftype(25, GgmlType.IQ4_NL));
    }

    /** True when {@code s} names one of llama-quantize's file types Lathe implements (Q4_K_M, Q8_0, ...). */
    public static boolean isLlamaCppType(String s) {
        return FTYPES.containsKey(s.toUpperCase(Locale.ROOT));
    }

    /** The names accepted by {@link #llamaCpp}. */
    public static List<String> llamaCppTypes() {
        return List.copyOf(FTYPES.keySet());
    }

    /**
     * llama-quantize's choice of type per tensor for file type {@code ftypeName} (Q4_K_M, Q3_K_M, Q2_K, ...).
     * With {@code pure} every tensor gets the base type (--pure). {@code hasImatrix} matters for a few mixes.
     */
    public static QuantPlan llamaCpp(WeightSource src, String ftypeName, boolean pure, boolean hasImatrix) {
        String key = ftypeName.toUpperCase(Locale.ROOT);
        Ftype ft = FTYPES.get(key);
        if (ft == null) throw new LatheException("unknown llama.cpp type '" + ftypeName + "'; known: " + FTYPES.keySet());
        ModelConfig c = src.config();
        Map<String, WeightFormat> m = new LinkedHashMap<>();
        List<String> notes = new ArrayList<>();
        boolean quantized = ft.base.isQuantized();
        int nLayer = c.nLayers();
        int gqa = c.nHeads() / c.nKvHeads();
        boolean is70b = c.arch().equals("llama") && nLayer == 80;
        boolean hasOutput = src.has(TensorNames.OUTPUT);
        for (String n : quantizable(src)) {
            Tensor t = src.tensor(n);
            long nx = t.cols();
            GgmlType type = ft.base;
            if (!pure && quantized) {
                type = mixType(key, ft.base, n, nx, nLayer, gqa, is70b, hasOutput, hasImatrix, notes);
            }
            m.put(n, new WeightFormat.Gguf(type));
        }
        return new QuantPlan(key + (pure ? " (pure)" : ""), ft.id, m, notes);
    }

    private static boolean useMoreBits(int i, int n) {
        return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
    }

    private static int layerOf(String name) {
        int a = name.indexOf('.'), b = name.indexOf('.', a + 1);
        return Integer.parseInt(name.substring(a + 1, b));
    }

    private static GgmlType mixType(String ft, GgmlType t, String name, long nx, int nLayer, int gqa, boolean is70b,
                                    boolean hasOutput, boolean hasImatrix, List<String> notes) {
        if (name.equals(TensorNames.OUTPUT) || (!hasOutput && name.equals(TensorNames.TOKEN_EMBD))) {
            if (nx % t.blockSize != 0) t = GgmlType.Q8_0;
            else if (t != GgmlType.Q8_0) t = GgmlType.Q6_K;
            return fallback(name, t, nx, notes);
        }
        if (name.equals(TensorNames.TOKEN_EMBD)) return fallback(name, t, nx, notes);
        int i = layerOf(name);
        if (name.contains("attn_v.weight")) {
            switch (ft) {
                case "Q2_K" -> t = gqa >= 4 ? GgmlType.Q4_K : GgmlType.Q3_K;
                case "Q2_K_S" -> { if (gqa >= 4) t = GgmlType.Q4_K; }
                case "Q3_K_M" -> t = i < 2 ? GgmlType.Q5_K : GgmlType.Q4_K;
                case "Q3_K_L" -> t = GgmlType.Q5_K;
                case "IQ4_NL" -> { if (gqa >= 4) t = GgmlType.Q5_K; }
                case "Q4_K_M", "Q5_K_M" -> { if (useMoreBits(i, nLayer)) t = GgmlType.Q6_K; }
                case "Q4_K_S" -> { if (i < 4) t = GgmlType.Q5_K; }
                default -> {}
            }
            if (is70b && (t == GgmlType.Q3_K || t == GgmlType.Q4_K)) t = GgmlType.Q5_K;
        } else if (name.contains("ffn_down")) {
            switch (ft) {
                case "Q2_K" -> t = GgmlType.Q3_K;
                case "Q2_K_S" -> { if (i < nLayer / 8) t = GgmlType.Q4_K; }
                case "Q3_K_M" -> t = i < nLayer / 16 ? GgmlType.Q5_K : GgmlType.Q4_K;
                case "Q3_K_L" -> t = GgmlType.Q5_K;
                case "Q4_K_M" -> { if (useMoreBits(i, nLayer)) t = GgmlType.Q6_K; }
                case "IQ4_NL" -> { if (i < nLayer / 8 && !hasImatrix) t = GgmlType.Q5_K; }
                case "Q5_K_M" -> { if (useMoreBits(i, nLayer)) t = GgmlType.Q6_K; }
                case "Q4_K_S" -> { if (i < nLayer / 8) t = GgmlType.Q5_K; }
                case "Q4_0" -> { if (hasImatrix && i < nLayer / 8) t = GgmlType.Q4_1; }
                case "Q5_0" -> { if (hasImatrix && i < nLayer / 8) t = GgmlType.Q5_1; }
                default -> {}
            }
        } else if (name.contains("attn_output.weight")) {
            switch (ft) {
                case "Q2_K" -> t = GgmlType.Q3_K;
                case "Q3_K_M" -> t = GgmlType.Q4_K;
                case "Q3_K_L" -> t = GgmlType.Q5_K;
                default -> {}
            }
        }
        return fallback(name, t, nx, notes);
    }

    /** llama.cpp's replacement type when rows of {@code nx} are not a multiple of {@code t}'s block size. */
    public static GgmlType fallback(String name, GgmlType t, long nx, List<String> notes) {
        if (nx % t.blockSize == 0) return t;
        GgmlType f = switch (t) {
            case Q2_K, Q3_K -> GgmlType.IQ4_NL;
            case Q4_K -> GgmlType.Q5_0;
            case Q5_K -> GgmlType.Q5_1;
            case Q6_K -> GgmlType.Q8_0;
            default -> throw new LatheException(name + ": rows of " + nx + " are not a multiple of the " + t + " block size "
                    + t.blockSize + " and llama.cpp has no fallback type for " + t);
        };
        if (nx % f.blockSize != 0) f = GgmlType.F16;
        notes.add(name + ": rows of " + nx + " are not a multiple of the " + t + " block size " + t.blockSize + "; using " + f + " (llama.cpp's fallback)");
        return f;
    }
}
