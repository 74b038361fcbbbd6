package dev.lathe.model;

/**
 * Llama 3 style RoPE frequency scaling ({@code rope_type: llama3}); null in a config means none.
 */
public record RopeScaling(float factor, float lowFreqFactor, float highFreqFactor, int originalContextLength) {}
