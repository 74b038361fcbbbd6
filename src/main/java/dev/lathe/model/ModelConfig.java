package dev.lathe.model;

import dev.lathe.LatheException;

import java.nio.file.Path;

/**
 * Hyper-parameters of a LLaMA-family decoder.
 *
 * @param arch            {@code llama}, {@code mistral} or {@code qwen2}
 * @param ropeStyle       how the stored Q/K rows pair dimensions (depends on the file format, not the model)
 * @param ropeScaling     Llama 3 frequency scaling, or null
 * @param tiedEmbeddings  the output head is the token embedding
 * @param qkvBias         q/k/v projections have biases (Qwen2)
 */
public record ModelConfig(String arch, int dim, int nLayers, int nHeads, int nKvHeads, int headDim, int ffnDim,
                          int vocabSize, float normEps, float ropeTheta, RopeStyle ropeStyle, RopeScaling ropeScaling,
                          int contextLength, boolean tiedEmbeddings, boolean qkvBias) {

    public int qDim() {
        return nHeads * headDim;
    }

    public int kvDim() {
        return nKvHeads * headDim;
    }

    /** The same config with another RoPE style (used when weights are permuted between layouts). */
    public ModelConfig withRopeStyle(RopeStyle style) {
        return new ModelConfig(arch, dim, nLayers, nHeads, nKvHeads, headDim, ffnDim, vocabSize, normEps, ropeTheta, style,
                ropeScaling, contextLength, tiedEmbeddings, qkvBias);
    }

    /** Throws if the shapes are impossible (non-positive, heads not dividing, absurd sizes). */
    public ModelConfig validate(Path source) {
        check(source, dim > 0 && dim <= 1 << 16, "hidden size " + dim);
        check(source, nLayers > 0 && nLayers <= 1024, "layer count " + nLayers);
        check(source, nHeads > 0 && nHeads <= 1024, "head count " + nHeads);
        check(source, nKvHeads > 0 && nKvHeads <= nHeads, "KV head count " + nKvHeads);
        check(source, nHeads % nKvHeads == 0, "KV heads " + nKvHeads + " do not divide heads " + nHeads);
        check(source, headDim > 0 && headDim % 2 == 0 && headDim <= 1024, "head size " + headDim);
        check(source, ffnDim > 0 && ffnDim <= 1 << 20, "feed-forward size " + ffnDim);
        check(source, vocabSize > 0 && vocabSize <= 1 << 22, "vocabulary size " + vocabSize);
        check(source, normEps > 0 && normEps < 1, "norm epsilon " + normEps);
        check(source, ropeTheta > 0 && Float.isFinite(ropeTheta), "rope theta " + ropeTheta);
        check(source, contextLength > 0, "context length " + contextLength);
        return this;
    }

    private static void check(Path source, boolean ok, String what) {
        if (!ok) throw new LatheException(source, "impossible model config: " + what);
    }
}
