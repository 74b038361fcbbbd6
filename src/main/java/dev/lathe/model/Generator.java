package dev.lathe.model;

import java.util.Arrays;
import java.util.function.IntConsumer;
import java.util.function.IntPredicate;

/** The generate loop: prefill the prompt in one batch, then decode token by token. */
public final class Generator {
    private Generator() {}

    /** Timings and tokens of one generation. */
    public record Result(int[] tokens, long prefillNanos, long decodeNanos, boolean stopped) {
        public double prefillTokensPerSecond(int promptTokens) {
            return prefillNanos == 0 ? 0 : promptTokens * 1e9 / prefillNanos;
        }

        public double decodeTokensPerSecond() {
            return decodeNanos == 0 || tokens.length <= 1 ? 0 : (tokens.length - 1) * 1e9 / decodeNanos;
        }
    }

    /**
     * Appends {@code prompt} to the session, then samples up to {@code maxNewTokens} tokens. Generation stops
     * early when {@code stop} accepts a sampled token (that token is not emitted) or the session is full.
     * {@code onToken} (may be null) sees each emitted token as soon as it is sampled.
     */
    public static Result generate(LlamaModel model, LlamaModel.Session session, int[] prompt, int maxNewTokens,
                                  Sampler sampler, IntPredicate stop, IntConsumer onToken) {
        if (prompt.length == 0) throw new IllegalArgumentException("empty prompt");
        if (maxNewTokens < 0) throw new IllegalArgumentException("maxNewTokens must be >= 0");
        long t0 = System.nanoTime();
        float[] logits = model.forward(session, prompt, 0, prompt.length, false);
        long t1 = System.nanoTime();
        int[] out = new int[maxNewTokens];
        int n = 0;
        boolean stopped = false;
        int[] one = new int[1];
        while (n < maxNewTokens) {
            int tok = sampler.sample(logits, 0, model.vocabSize());
            if (stop != null && stop.test(tok)) {
                stopped = true;
                break;
            }
            out[n++] = tok;
            if (onToken != null) onToken.accept(tok);
            if (n == maxNewTokens || session.length() >= session.maxTokens()) break;
            one[0] = tok;
            logits = model.forward(session, one, 0, 1, false);
        }
        long t2 = System.nanoTime();
        return new Result(Arrays.copyOf(out, n), t1 - t0, t2 - t1, stopped);
    }
}
