/**
 * Calibrated weight compression.
 *
 * <ul>
 *   <li>{@link dev.lathe.compress.CalibrationData}: calibration token sequences: seeded random windows of
 *       tokenized text files ({@code randomWindows}) or llama-imatrix's consecutive BOS-first chunks ({@code chunks}).</li>
 *   <li>{@link dev.lathe.compress.Calibrator#run}: the sequential pipeline: block by block, the recipe's
 *       {@link dev.lathe.compress.Modifier}s see the activations entering the block (outputs of the already
 *       compressed blocks), with per-input {@link dev.lathe.compress.InputStats} (Σx² per column = importance,
 *       XᵀX = Hessian) computed on demand by {@link dev.lathe.compress.BlockRunner}.</li>
 *   <li>Modifiers: {@link dev.lathe.compress.QuantizeModifier} (RTN, imatrix-weighted RTN, GPTQ),
 *       {@link dev.lathe.compress.AwqModifier} (scale search folded into norms / preceding linears),
 *       {@link dev.lathe.compress.ImatrixCollector} (llama.cpp imatrix.dat).</li>
 *   <li>Targets: {@link dev.lathe.compress.WeightFormat} (GGUF block types or INTn groups), per tensor via
 *       {@link dev.lathe.compress.QuantPlan} (llama-quantize's mixes and fallbacks); {@link dev.lathe.compress.Grid}
 *       is the column-by-column view GPTQ ({@link dev.lathe.compress.Gptq}) quantizes into.</li>
 *   <li>Output: {@link dev.lathe.compress.GgufOutput} (llama-quantize's layout) and
 *       {@link dev.lathe.compress.CompressedTensors} (pack-quantized safetensors, loaded back as
 *       {@link dev.lathe.model.PackedIntLinear}); {@link dev.lathe.compress.QuantizeJob} ties it together for the CLI.</li>
 * </ul>
 */
package dev.lathe.compress;
