/**
 * Tokenizer training: {@link dev.lathe.tokenizer.train.SpmBpeTrainer} learns a SentencePiece-style BPE
 * vocabulary with byte fallback (the Llama 2 layout) whose scores make llama.cpp's score-driven SPM merging
 * reproduce the segmentation the trainer learnt.
 */
package dev.lathe.tokenizer.train;
