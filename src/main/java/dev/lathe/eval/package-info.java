/**
 * Evaluation: {@link dev.lathe.eval.Perplexity} (llama-perplexity's convention; bits per byte from the result),
 * {@link dev.lathe.eval.KlDivergence} (KL(ref || model) over the full vocabulary at the scored positions, with
 * top-1 agreement and the perplexity ratio), {@link dev.lathe.eval.Progress} callbacks with an ETA, and
 * {@link dev.lathe.eval.Bench} (prefill/decode tokens per second and peak RSS).
 */
package dev.lathe.eval;
