/**
 * Pruning and sparse execution.
 * <ul>
 *   <li>{@link dev.lathe.prune.Pruner}: magnitude and Wanda scores, unstructured (per row, per matrix, global)
 *   and N:M pruning of float arrays. Wanda takes per-column input norms as an array, so any calibration pass
 *   can feed it.</li>
 *   <li>{@link dev.lathe.prune.ModelPruner}: prunes a model's block matrices (embeddings and head only when
 *   asked, norms never) and exposes the result as a {@link dev.lathe.model.WeightSource}.</li>
 *   <li>{@link dev.lathe.prune.SparseMatrix} / {@link dev.lathe.prune.SparseLinear}: bitmask + packed values
 *   (F32, F16, BF16, or int8 with F16 scales per 32 columns), AVX-512 expand kernels; N:M-pruned matrices use
 *   the same layout.</li>
 *   <li>{@link dev.lathe.prune.SparseSafetensors} writes HF folders (dense, compressed-tensors sparse-bitmask or
 *   sparse-24-bitmask); {@link dev.lathe.prune.SparseSource} reads the sparse ones and runs them on
 *   {@link dev.lathe.prune.SparseLinear}.</li>
 *   <li>{@link dev.lathe.prune.IterativePruner}: gradual magnitude pruning (cubic schedule of Zhu &amp; Gupta 2017,
 *   or linear) with recovery fine-tuning after every round, the pruned weights held at zero by
 *   {@link dev.lathe.train.ParamMask}s; one round = one-shot pruning + recovery (any method or N:M pattern).
 *   {@link dev.lathe.prune.PrunedWeights} wraps weights pruned elsewhere for the writers.</li>
 * </ul>
 * llama.cpp (GGUF) gets the dense export: it has no sparse tensor type, so the zeros cost the same bytes and
 * time as any other weight; a pruned model only becomes smaller there after quantization.
 */
package dev.lathe.prune;
