/**
 * Pruning and sparse execution.
 * <ul>
 *   <li>{@link dev.lathe.prune.Pruner}: magnitude and Wanda scores, unstructured (per row, per matrix, global)
 *   and N:M pruning of float arrays. Wanda takes per-column input norms as an array, so any calibration pass
 *   can feed it.</li>
 *   <li>{@link dev.lathe.prune.ModelPruner}: prunes a model's block matrices (embeddings and head only when
 *   asked, norms never) and exposes the result as a {@link dev.lathe.model.WeightSource}.</li>
 *   <li>{@link dev.lathe.prune.SparseGpt}: SparseGPT (OBS updates with the calibration Hessian, GPTQ's factor
 *   {@link dev.lathe.compress.Gptq#factor}, lazy blocks of 128 columns, adaptive unstructured or N:M masks), optionally
 *   quantizing the kept weights onto a {@link dev.lathe.compress.Grid} in the same sweep (joint sparse + quant).</li>
 *   <li>{@link dev.lathe.prune.Owl}: OWL's per-layer sparsity from outlier ratios of the Wanda scores.</li>
 *   <li>{@link dev.lathe.prune.PruneModifier}: magnitude, Wanda or SparseGPT as a {@link dev.lathe.compress.Modifier}
 *   of the sequential calibration pipeline ({@link dev.lathe.compress.Calibrator}: each block is pruned with the
 *   activations of the already pruned blocks); {@link dev.lathe.prune.PruneJob} runs it for the CLI (calibration
 *   data, OWL's extra dense pass, the quantization plan, output).</li>
 *   <li>{@link dev.lathe.prune.SparseMatrix} / {@link dev.lathe.prune.SparseLinear}: bitmask + packed values
 *   (F32, F16, BF16, or int8 with F16 scales per 32 columns), AVX-512 expand kernels; N:M-pruned matrices use
 *   the same layout.</li>
 *   <li>{@link dev.lathe.prune.SparseSafetensors} writes HF folders (dense, compressed-tensors sparse-bitmask or
 *   sparse-24-bitmask, values F32/F16/BF16 or int8 with F16 scales per 32 columns, Lathe's layout for weights on
 *   the Q8_0 grid); {@link dev.lathe.prune.SparseSource} reads the sparse ones and runs them on
 *   {@link dev.lathe.prune.SparseLinear} (the CLI's eval, generate and bench open such folders) where they are faster:
 *   {@link dev.lathe.prune.SparseSource.Kernels} (auto: when the model's matrices, dense, exceed the last-level cache;
 *   otherwise the compressed matrices are expanded once, exactly, into their dense layout). F16/BF16 values are used in
 *   place from the mapped file.</li>
 *   <li>{@link dev.lathe.prune.IterativePruner}: gradual magnitude pruning (cubic schedule of Zhu &amp; Gupta 2017,
 *   or linear) with recovery fine-tuning after every round, the pruned weights held at zero by
 *   {@link dev.lathe.train.ParamMask}s; one round = one-shot pruning + recovery (any method or N:M pattern).
 *   {@link dev.lathe.prune.PrunedWeights} wraps weights pruned elsewhere for the writers.</li>
 * </ul>
 * llama.cpp (GGUF) gets the dense export: it has no sparse tensor type, so the zeros cost the same bytes and
 * time as any other weight; a pruned model only becomes smaller there after quantization (SparseGPT with
 * {@code --type}: the pruned weights are the block type's zeros; exact on symmetric types such as Q4_0 and Q8_0,
 * the nearest grid value on types with a per-block minimum such as Q4_K).
 */
package dev.lathe.prune;
