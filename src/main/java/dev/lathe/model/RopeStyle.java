package dev.lathe.model;

/** How RoPE pairs dimensions inside a head. */
public enum RopeStyle {
    /** Pairs (2i, 2i+1): Meta's original checkpoints, llama2.c, GGUF arch {@code llama} (ggml "NORM"). */
    INTERLEAVED,
    /** Pairs (i, i + d/2), HF {@code rotate_half}: HF checkpoints, GGUF arch {@code qwen2} (ggml "NEOX"). */
    HALF
}
