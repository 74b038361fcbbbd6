package dev.lathe.eval;

import dev.lathe.model.LlamaModel;
import dev.lathe.model.Sampler;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Throughput benchmark behind {@code lathe bench}: prefill tokens/s (one batched forward over a prompt of
 * seeded random ids) and decode tokens/s (greedy, one token per forward), each the median of several runs
 * after warm-up, plus the peak resident set size.
 */
public final class Bench {
    private Bench() {}

    public record Report(String model, int threads, int promptTokens, int genTokens, int runs, double prefillTokensPerSecond,
                         double decodeTokensPerSecond, double[] prefillRuns, double[] decodeRuns, long peakRssBytes) {
        @Override
        public String toString() {
            return String.format("%s: threads %d, prompt %d, gen %d, runs %d: prefill %.1f tok/s, decode %.2f tok/s (medians), peak RSS %.1f MiB",
                    model, threads, promptTokens, genTokens, runs, prefillTokensPerSecond, decodeTokensPerSecond, peakRssBytes / 1048576.0);
        }
    }

    /** Runs warm-up rounds (at least 2 and 1 s) and {@code runs} measured prefill+decode rounds with seeded random prompt tokens. */
    public static Report run(LlamaModel model, int promptTokens, int genTokens, int runs, LlamaModel.KvType kv, long seed) {
        if (promptTokens < 1 || genTokens < 1 || runs < 1) throw new IllegalArgumentException("prompt, gen and runs must be >= 1");
        SplittableRandom r = new SplittableRandom(seed);
        int[] prompt = new int[promptTokens];
        for (int i = 0; i < promptTokens; i++) prompt[i] = r.nextInt(model.vocabSize());
        LlamaModel.Session s = model.newSession(promptTokens + genTokens, kv, Math.max(promptTokens, 1));
        double[] pre = new double[runs], dec = new double[runs];
        int[] one = new int[1];
        long warmStart = System.nanoTime();
        // warm-up until the JIT has compiled the kernels: at least 2 rounds and 1 second (at most 50 rounds)
        for (int w = 0; w < 50 && (w < 2 || System.nanoTime() - warmStart < 1_000_000_000L); w++) {
            round(model, s, prompt, genTokens, one, null, 0);
        }
        for (int run = 0; run < runs; run++) round(model, s, prompt, genTokens, one, new double[][]{pre, dec}, run);
        return new Report(model.path().toString(), model.pool().threads(), promptTokens, genTokens, runs, median(pre), median(dec),
                pre, dec, peakRssBytes());
    }

    private static void round(LlamaModel model, LlamaModel.Session s, int[] prompt, int genTokens, int[] one, double[][] out, int run) {
        s.reset();
        long t0 = System.nanoTime();
        float[] logits = model.forward(s, prompt, 0, prompt.length, false);
        long t1 = System.nanoTime();
        for (int g = 0; g < genTokens; g++) {
            one[0] = Sampler.argmax(logits, 0, model.vocabSize());
            logits = model.forward(s, one, 0, 1, false);
        }
        long t2 = System.nanoTime();
        if (out != null) {
            out[0][run] = prompt.length * 1e9 / (t1 - t0);
            out[1][run] = genTokens * 1e9 / (t2 - t1);
        }
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    }

    /** VmHWM from /proc/self/status in bytes, or -1 where that file does not exist. */
    public static long peakRssBytes() {
        Path p = Path.of("/proc/self/status");
        if (!Files.isReadable(p)) return -1;
        try {
            for (String line : Files.readAllLines(p)) {
                if (line.startsWith("VmHWM:")) {
                    String[] f = line.substring(6).trim().split("\\s+");
                    return Long.parseLong(f[0]) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }
}
