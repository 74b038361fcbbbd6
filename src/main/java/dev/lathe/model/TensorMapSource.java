package dev.lathe.model;

import dev.lathe.LatheException;
import dev.lathe.tensor.Tensor;

import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * A {@link WeightSource} over tensors already in hand (a map of canonical names), e.g. a model read by a
 * custom reader or produced in memory by a compression method. {@code onClose} releases what backs the
 * tensors (an arena, a mapped file), or is null.
 */
public class TensorMapSource implements WeightSource {
    private final Path path;
    private final ModelConfig config;
    private final Map<String, Tensor> tensors;
    private final Runnable onClose;

    public TensorMapSource(Path path, ModelConfig config, Map<String, Tensor> tensors, Runnable onClose) {
        this.path = path;
        this.config = config;
        this.tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
        this.onClose = onClose;
    }

    @Override
    public Path path() {
        return path;
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public Set<String> tensorNames() {
        return tensors.keySet();
    }

    @Override
    public Tensor tensor(String canonicalName) {
        Tensor t = tensors.get(canonicalName);
        if (t == null) throw new LatheException(path, "missing tensor '" + canonicalName + "'");
        return t;
    }

    @Override
    public void close() {
        if (onClose != null) onClose.run();
    }
}
