/**
 * The inference engine for LLaMA-family decoders.
 *
 * <ul>
 *   <li>{@link dev.lathe.model.LlamaModel}: {@code load(WeightSource)} (or with a {@link dev.lathe.model.Parallel}
 *       pool and a {@link dev.lathe.model.LlamaModel.LinearFactory}), {@code newSession(maxTokens[, KvType[, maxBatch]])},
 *       {@code forward(session, tokens, start, count, allLogits)} (batched prefill; decode is count 1),
 *       per-layer hidden-state hook {@code Session.setHook}.</li>
 *   <li>{@link dev.lathe.model.Linears#of}: {@link dev.lathe.model.DenseLinear} (F32/F16/BF16) or
 *       {@link dev.lathe.model.QuantLinear} (any registered block type; llama.cpp's quantized-activation path when
 *       the codec is an {@link dev.lathe.tensor.ActivationQuantizedCodec}).</li>
 *   <li>{@link dev.lathe.model.Parallel}: the small reusable thread pool ({@code lathe.threads} system property or
 *       {@code Parallel.setCommonThreads}).</li>
 *   <li>{@link dev.lathe.model.Sampler} (greedy / temperature / top-p, seeded) and {@link dev.lathe.model.Generator}.</li>
 *   <li>{@link dev.lathe.model.RandomWeights}: seeded random checkpoints of any shape (benchmarks, tests).</li>
 * </ul>
 *
 * Every kernel sums a given (row, input) dot product in the same order whatever the batch size or thread
 * count, and lane sums and exp are computed without order-dependent intrinsics, so a forward pass is bit for
 * bit reproducible and token-by-token decode gives exactly the logits of a batched prefill.
 */
package dev.lathe.model;
