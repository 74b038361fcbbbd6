package dev.lathe.model;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Canonical tensor names are llama.cpp's GGUF names ({@code token_embd.weight}, {@code blk.N.attn_q.weight},
 * ...). This maps Hugging Face names to and from them.
 */
public final class TensorNames {
    private TensorNames() {}

    public static final String TOKEN_EMBD = "token_embd.weight";
    public static final String OUTPUT_NORM = "output_norm.weight";
    public static final String OUTPUT = "output.weight";

    private static final Map<String, String> LAYER_HF_TO_GGUF = new LinkedHashMap<>();

    static {
        LAYER_HF_TO_GGUF.put("input_layernorm.weight", "attn_norm.weight");
        LAYER_HF_TO_GGUF.put("self_attn.q_proj.weight", "attn_q.weight");
        LAYER_HF_TO_GGUF.put("self_attn.k_proj.weight", "attn_k.weight");
        LAYER_HF_TO_GGUF.put("self_attn.v_proj.weight", "attn_v.weight");
        LAYER_HF_TO_GGUF.put("self_attn.q_proj.bias", "attn_q.bias");
        LAYER_HF_TO_GGUF.put("self_attn.k_proj.bias", "attn_k.bias");
        LAYER_HF_TO_GGUF.put("self_attn.v_proj.bias", "attn_v.bias");
        LAYER_HF_TO_GGUF.put("self_attn.o_proj.weight", "attn_output.weight");
        LAYER_HF_TO_GGUF.put("post_attention_layernorm.weight", "ffn_norm.weight");
        LAYER_HF_TO_GGUF.put("mlp.gate_proj.weight", "ffn_gate.weight");
        LAYER_HF_TO_GGUF.put("mlp.up_proj.weight", "ffn_up.weight");
        LAYER_HF_TO_GGUF.put("mlp.down_proj.weight", "ffn_down.weight");
    }

    private static final Pattern HF_LAYER = Pattern.compile("model\\.layers\\.(\\d+)\\.(.+)");
    private static final Pattern GGUF_LAYER = Pattern.compile("blk\\.(\\d+)\\.(.+)");

    public static String layer(int layer, String suffix) {
        return "blk." + layer + "." + suffix;
    }

    /** GGUF name for an HF name, or null if the HF name is not part of a LLaMA-family model. */
    public static String hfToGguf(String hf) {
        switch (hf) {
            case "model.embed_tokens.weight": return TOKEN_EMBD;
            case "model.norm.weight": return OUTPUT_NORM;
            case "lm_head.weight": return OUTPUT;
            default:
        }
        Matcher m = HF_LAYER.matcher(hf);
        if (!m.matches()) return null;
        String s = LAYER_HF_TO_GGUF.get(m.group(2));
        return s == null ? null : "blk." + m.group(1) + "." + s;
    }

    /** HF name for a GGUF name, or null. */
    public static String ggufToHf(String gguf) {
        switch (gguf) {
            case TOKEN_EMBD: return "model.embed_tokens.weight";
            case OUTPUT_NORM: return "model.norm.weight";
            case OUTPUT: return "lm_head.weight";
            default:
        }
        Matcher m = GGUF_LAYER.matcher(gguf);
        if (!m.matches()) return null;
        for (Map.Entry<String, String> e : LAYER_HF_TO_GGUF.entrySet()) {
            if (e.getValue().equals(m.group(2))) return "model.layers." + m.group(1) + "." + e.getKey();
        }
        return null;
    }
}
