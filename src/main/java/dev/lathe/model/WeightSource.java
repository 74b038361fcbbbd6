package dev.lathe.model;

import dev.lathe.io.gguf.GgufFile;
import dev.lathe.tensor.Tensor;

import java.nio.file.Path;
import java.util.Optional;
import java.util.Set;

/**
 * A loaded checkpoint: its config and its tensors under canonical (GGUF) names, stored as in the file
 * (no dequantizing). Q/K rows are as the file has them; {@link ModelConfig#ropeStyle()} says how to rotate.
 */
public interface WeightSource extends AutoCloseable {
    Path path();

    ModelConfig config();

    Set<String> tensorNames();

    default boolean has(String canonicalName) {
        return tensorNames().contains(canonicalName);
    }

    /** The tensor under its canonical name; throws {@link dev.lathe.LatheException} naming the file if missing. */
    Tensor tensor(String canonicalName);

    /**
     * The shape of a tensor without materializing it: sources whose {@link #tensor} decodes (sparse or packed
     * matrices, decoded to F32) override it, so shape checks of a 1B model do not decode gigabytes.
     */
    default long[] shape(String canonicalName) {
        return tensor(canonicalName).shape();
    }

    /**
     * True when {@link #tensor} computes the tensor on each call (a pruned matrix computed from the source) rather
     * than viewing stored bytes: writers then ask for it only when they write it, so one such tensor is in memory
     * at a time.
     */
    default boolean computesTensor(String canonicalName) {
        return false;
    }

    /**
     * The engine's linear layer for a 2-D weight: by default {@link Linears#of} over {@link #tensor}; a source
     * storing a format with no {@link dev.lathe.tensor.GgmlType} (compressed-tensors' packed integers) returns
     * its own implementation, while {@link #tensor} still gives the decoded weights.
     */
    default Linear linear(String canonicalName, Parallel pool) {
        return Linears.of(tensor(canonicalName), pool);
    }

    /** The GGUF file behind this source, if it is one (tokenizer metadata lives there). */
    default Optional<GgufFile> gguf() {
        return Optional.empty();
    }

    /** The Hugging Face folder behind this source, if it is one (tokenizer.json lives there). */
    default Optional<Path> hfFolder() {
        return Optional.empty();
    }

    @Override
    void close();
}
