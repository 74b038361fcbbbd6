/**
 * Checkpoint formats and conversion.
 * <ul>
 * <li>{@link dev.lathe.io.ModelLoader#open(java.nio.file.Path)}: any GGUF file, Hugging Face folder (or
 *     safetensors file with config.json beside it) or llama2.c v0 checkpoint, detected by content, checked
 *     against its config ({@link dev.lathe.io.ModelLoader#checkTensors}).</li>
 * <li>Readers: {@link dev.lathe.io.gguf.GgufFile}, {@link dev.lathe.io.safetensors.SafetensorsFile}; weight
 *     sources {@link dev.lathe.io.gguf.GgufWeightSource}, {@link dev.lathe.io.hf.HfWeightSource},
 *     {@link dev.lathe.io.llama2c.Llama2cWeightSource}.</li>
 * <li>Writers (atomic: temp file in the target folder, then rename; tensors produced lazily):
 *     {@link dev.lathe.io.gguf.GgufWriter}, {@link dev.lathe.io.safetensors.SafetensorsWriter},
 *     {@link dev.lathe.io.hf.HfFolderWriter}; all built on {@link dev.lathe.io.AtomicOutput}.</li>
 * <li>{@link dev.lathe.io.Converter}: any source to GGUF (F32, F16, BF16, Q8_0, Q4_0) or to an HF folder
 *     (F32, F16, BF16), laid out like convert_hf_to_gguf.py / llama-quantize --pure.</li>
 * </ul>
 * Every problem with an input file raises {@link dev.lathe.LatheException} naming the file.
 */
package dev.lathe.io;
