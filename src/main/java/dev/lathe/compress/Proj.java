package dev.lathe.compress;

/** The seven linear layers of a LLaMA decoder block, by GGUF name, and which input each one reads. */
public enum Proj {
    Q("attn_q", Input.ATTN_IN), K("attn_k", Input.ATTN_IN), V("attn_v", Input.ATTN_IN),
    O("attn_output", Input.ATTN_OUT), GATE("ffn_gate", Input.FFN_IN), UP("ffn_up", Input.FFN_IN),
    DOWN("ffn_down", Input.FFN_MID);

    /** The activations a group of projections multiplies: normed residual, attention output, normed residual, SwiGLU. */
    public enum Input { ATTN_IN, ATTN_OUT, FFN_IN, FFN_MID }

    public final String ggufName;
    public final Input input;

    Proj(String ggufName, Input input) {
        this.ggufName = ggufName;
        this.input = input;
    }

    /** The canonical tensor name in layer {@code layer}, e.g. {@code blk.3.attn_q.weight}. */
    public String tensorName(int layer) {
        return "blk." + layer + "." + ggufName + ".weight";
    }
}
