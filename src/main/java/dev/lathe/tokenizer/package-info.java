/**
 * Tokenizers of the LLaMA family, behaving like llama.cpp's {@code llama_vocab} (src/llama-vocab.cpp) and
 * Hugging Face tokenizers.
 *
 * <ul>
 *   <li>{@link dev.lathe.tokenizer.Tokenizer}: encode / decode / streaming decode, ids and token types.</li>
 *   <li>{@link dev.lathe.tokenizer.Tokenizers}: {@code load(WeightSource)}, {@code fromGguf},
 *       {@code fromHfFolder}, {@code create(Vocabulary)}, {@code toGgufMetadata}, {@code writeHf}.</li>
 *   <li>{@link dev.lathe.tokenizer.Vocabulary}: everything that defines a tokenizer, in GGUF terms.</li>
 *   <li>SPM ({@code tokenizer.ggml.model = "llama"}): space prefix, ' ' to U+2581, scored bigram merges over a
 *       linked list of symbols with a heap, byte fallback to {@code <0xXX>} (else {@code <unk>}).</li>
 *   <li>Byte-level BPE ({@code "gpt2"}): {@link dev.lathe.tokenizer.PreTokenizer} regexes chosen by
 *       {@code tokenizer.ggml.pre} (default, gpt-2, llama-bpe, qwen2, smollm and their aliases), GPT-2's
 *       bytes-to-unicode alphabet, rank-ordered merges, a cache per pre-token, llama3's ignore_merges.</li>
 *   <li>Special tokens (control, user-defined, unknown) are split out of the text longest first; control and
 *       unknown only when {@code parseSpecial}, user-defined always (as llama.cpp).</li>
 * </ul>
 *
 * Known differences, all deliberate:
 * <ul>
 *   <li>decode drops one leading space of an SPM text and turns every U+2581 into a space (llama.cpp keeps the
 *       space after BOS and leaves a U+2581 spelled with byte tokens); pieceBytes is llama.cpp's
 *       token_to_piece.</li>
 *   <li>BPE vocabularies without bos/eos ids report -1 (llama.cpp falls back to id 11).</li>
 *   <li>The Llama 3 / Qwen2 contractions use llama.cpp's {@code '[sS]} form: HF's {@code (?i:'s)} also
 *       matches {@code 'ſ} (U+017F), llama.cpp and this code do not.</li>
 *   <li>After a special token SPM text gets the space prefix again (llama.cpp, HF's legacy Prepend normalizer);
 *       an HF Metaspace pre-tokenizer with prepend_scheme "first" would not add it there.</li>
 *   <li>Unassigned code points: llama.cpp's hand-written GPT-2/Llama 3 splitters emit each one alone, the regex
 *       groups them with neighbouring symbols.</li>
 * </ul>
 */
package dev.lathe.tokenizer;
