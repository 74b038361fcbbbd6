/**
 * Training of LLaMA-family decoders in F32 on the CPU.
 *
 * <ul>
 *   <li>{@link dev.lathe.train.TrainModel}: parameters under canonical GGUF names, HF {@code [out, in]}
 *       layout; {@code init(config, seed, scaledResidualInit)} or {@code load(WeightSource)}; forward over
 *       {@code [B, T]} token batches and backward for every operation ({@link dev.lathe.train.Ops}), with
 *       optional activation checkpointing.</li>
 *   <li>{@link dev.lathe.train.Kernels}: the Vector API matrix product (register and cache blocked,
 *       exactly reproducible), run on a small {@link dev.lathe.train.Parallel} pool.</li>
 *   <li>{@link dev.lathe.train.Loss} (pluggable; {@link dev.lathe.train.CrossEntropyLoss} with an ignore
 *       index), {@link dev.lathe.train.AdamW} (decoupled decay, global-norm clipping),
 *       {@link dev.lathe.train.LrSchedule} (warm-up + cosine).</li>
 *   <li>Data: {@link dev.lathe.train.TextCorpus} (strict UTF-8 files and folders),
 *       {@link dev.lathe.train.TextEncoder} (tokenizer hook), {@link dev.lathe.train.TokenData}
 *       (document split, packing with BOS/EOS, token cache), {@link dev.lathe.train.SequenceSampler}.</li>
 *   <li>{@link dev.lathe.train.Trainer}: accumulation, clipping, schedule, validation loss and bits per
 *       byte, {@link dev.lathe.train.Checkpoint}s (atomic, checksummed) and bit-identical resume, progress
 *       through {@link dev.lathe.train.TrainListener}.</li>
 *   <li>{@link dev.lathe.train.ParamMask}: elements of a parameter held at exactly zero during training
 *       ({@code Trainer.setMasks}): gradients masked before clipping, weights re-zeroed after each AdamW step,
 *       saved in checkpoints. {@code ParamMask.ofZeros(model, minSparsity)} derives masks from the zeros of
 *       a pruned model, which is what recovery fine-tuning uses.</li>
 *   <li>{@link dev.lathe.train.TrainedWeights}: a trained model's parameters as a
 *       {@link dev.lathe.model.WeightSource} over the model it was loaded from, for the existing writers.</li>
 * </ul>
 */
package dev.lathe.train;
