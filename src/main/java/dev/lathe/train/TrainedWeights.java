package dev.lathe.train;

import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.Tensor;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * A {@link WeightSource} of a {@link TrainModel}'s current parameters (F32 copies taken at {@link #of}) in
 * place of the same tensors of the model it was loaded from. Everything else (path, config, tokenizer
 * metadata of a GGUF or Hugging Face base, tensors the trainable model does not have, such as
 * {@code rope_freqs}) comes from the base, so the existing writers turn a fine-tuned model back into the
 * kind of file it came from. The base must stay open while this source is used; closing this one does not
 * close it.
 */
public final class TrainedWeights implements WeightSource {
    private final WeightSource base;
    private final Map<String, Tensor> trained;

    private TrainedWeights(WeightSource base, Map<String, Tensor> trained) {
        this.base = base;
        this.trained = trained;
    }

    /** Snapshot of {@code model}'s parameters over {@code base}; the two must have the same shape of model. */
    public static TrainedWeights of(TrainModel model, WeightSource base) {
        ModelConfig a = model.config(), b = base.config();
        if (!a.equals(b)) throw new LatheException(base.path(), "trained model " + a + " does not match the model it replaces, " + b);
        Map<String, Tensor> t = new LinkedHashMap<>();
        for (TrainModel.Param p : model.params()) {
            if (base.has(p.name()) && !Arrays.equals(base.tensor(p.name()).shape(), p.shape())) {
                throw new LatheException(base.path(), "tensor '" + p.name() + "' has shape " + Arrays.toString(base.tensor(p.name()).shape())
                        + ", the trained one " + Arrays.toString(p.shape()));
            }
        }
        t.putAll(model.toTensors());
        return new TrainedWeights(base, t);
    }

    /** The trained values of a parameter (a copy), row-major. */
    public float[] floats(String name) {
        Tensor t = trained.get(name);
        if (t == null) throw new IllegalArgumentException("no trained tensor " + name);
        return dev.lathe.tensor.TensorOps.toFloats(t);
    }

    @Override
    public Path path() {
        return base.path();
    }

    @Override
    public ModelConfig config() {
        return base.config();
    }

    @Override
    public Set<String> tensorNames() {
        return base.tensorNames();
    }

    @Override
    public Tensor tensor(String name) {
        Tensor t = trained.get(name);
        return t != null && base.has(name) ? t : base.tensor(name);
    }

    @Override
    public Optional<GgufFile> gguf() {
        return base.gguf();
    }

    @Override
    public Optional<Path> hfFolder() {
        return base.hfFolder();
    }

    @Override
    public void close() {
    }

    @Override
    public String toString() {
        return "trained weights over " + base.path();
    }
}
