package dev.lathe.eval;

import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.Parallel;
import dev.lathe.model.RandomWeights;
import dev.lathe.model.Sampler;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Throughput benchmark: prefill tokens/s (one batched forward over a prompt) and decode tokens/s (greedy,
 * one token per forward), each the median of several runs after a warm-up run, plus the peak resident set
 * size. {@code main} usage:
 * <pre>
 *   Bench MODEL [--threads N] [--prompt 128] [--gen 32] [--runs 5] [--kv f32|f16]
 *   MODEL = a GGUF file, a Hugging Face folder or .safetensors file, or random:PRESET[:TYPE]
 *           (PRESET one of tinyllama-1.1b, llama2-7b, llama3-8b, qwen2-0.5b; TYPE F16 by default)
 * </pre>
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

    /** Opens a GGUF file, a Hugging Face folder / .safetensors file, or {@code random:PRESET[:TYPE]}. */
    public static WeightSource open(String spec) {
        if (spec.startsWith("random:")) {
            String[] f = spec.split(":");
            GgmlType t = f.length > 2 ? GgmlType.valueOf(f[2].toUpperCase()) : GgmlType.F16;
            return new RandomWeights(RandomWeights.preset(f[1]), t, 1234);
        }
        Path p = Path.of(spec);
        if (!Files.exists(p)) throw new LatheException(p, "no such file or folder");
        if (Files.isRegularFile(p) && GgufFile.looksLikeGguf(p)) return GgufWeightSource.open(p);
        return HfWeightSource.open(p);
    }

    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: Bench MODEL [--threads N] [--prompt 128] [--gen 32] [--runs 5] [--kv f32|f16]");
            System.exit(2);
        }
        int threads = Runtime.getRuntime().availableProcessors(), prompt = 128, gen = 32, runs = 5;
        LlamaModel.KvType kv = LlamaModel.KvType.F32;
        for (int i = 1; i < args.length; i += 2) {
            if (i + 1 >= args.length) throw new IllegalArgumentException("missing value for " + args[i]);
            switch (args[i]) {
                case "--threads" -> threads = Integer.parseInt(args[i + 1]);
                case "--prompt" -> prompt = Integer.parseInt(args[i + 1]);
                case "--gen" -> gen = Integer.parseInt(args[i + 1]);
                case "--runs" -> runs = Integer.parseInt(args[i + 1]);
                case "--kv" -> kv = LlamaModel.KvType.valueOf(args[i + 1].toUpperCase());
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        try (Parallel pool = new Parallel(threads); WeightSource src = open(args[0])) {
            long t0 = System.nanoTime();
            LlamaModel m = LlamaModel.load(src, pool);
            System.out.printf("loaded %s in %.2f s: %s, %.1f MiB of weights%n", args[0], (System.nanoTime() - t0) / 1e9, m,
                    m.storageBytes() / 1048576.0);
            System.out.println(run(m, prompt, gen, runs, kv, 42));
        } catch (LatheException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
        }
    }
}
