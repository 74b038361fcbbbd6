package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.io.ModelLoader;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.Parallel;
import dev.lathe.model.WeightSource;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;

import java.nio.file.Path;
import java.util.Optional;

/** A model opened for running: weights (mapped), engine and tokenizer (if the checkpoint has one). */
final class LoadedModel implements AutoCloseable {
    final WeightSource source;
    final LlamaModel model;
    final Optional<Tokenizer> tokenizer;

    private LoadedModel(WeightSource source, LlamaModel model, Optional<Tokenizer> tokenizer) {
        this.source = source;
        this.model = model;
        this.tokenizer = tokenizer;
    }

    static LoadedModel open(Path path, int threads) {
        return open(path, threads, dev.lathe.prune.SparseSource.Kernels.AUTO);
    }

    /** {@code kernels}: which kernels run the matrices of a compressed-tensors sparse folder (ignored for other models). */
    static LoadedModel open(Path path, int threads, dev.lathe.prune.SparseSource.Kernels kernels) {
        if (threads > 0) Parallel.setCommonThreads(threads);
        // a compressed-tensors sparse folder (lathe prune) runs on the sparse kernels where they are faster
        String sf = java.nio.file.Files.isDirectory(path) ? dev.lathe.prune.SparseSource.sparseFormat(path) : null;
        boolean sparse = dev.lathe.prune.SparseSafetensors.BITMASK.equals(sf) || dev.lathe.prune.SparseSafetensors.SPARSE24.equals(sf);
        WeightSource src = sparse ? dev.lathe.prune.SparseSource.open(path, kernels) : ModelLoader.open(path);
        try {
            ModelLoader.checkTensors(src);
            LlamaModel m = LlamaModel.load(src);
            return new LoadedModel(src, m, Tokenizers.load(src));
        } catch (RuntimeException e) {
            src.close();
            throw e;
        }
    }

    /** For a sparse folder: which kernels run its compressed matrices and why; empty for other models. */
    Optional<String> sparseKernels() {
        return source instanceof dev.lathe.prune.SparseSource s ? Optional.of(s.kernelsReason()) : Optional.empty();
    }

    Tokenizer requireTokenizer() {
        return tokenizer.orElseThrow(() -> new LatheException(source.path(), "the model has no tokenizer (needed to turn text into tokens)"));
    }

    @Override
    public void close() {
        source.close();
    }
}
