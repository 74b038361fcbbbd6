package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.eval.Bench;
import dev.lathe.eval.MemoryBandwidth;
import dev.lathe.model.LlamaModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Prefill and decode speed (median of several runs, like llama-bench's pp/tg tests) and peak memory.",
                "Prompt tokens are random ids (seeded); decode runs after a prompt of the same length."})
final class BenchCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "model: GGUF file, Hugging Face folder or llama2.c .bin")
    Path model;

    @Option(names = {"-t", "--threads"}, defaultValue = "0", description = "threads (default: all cores)")
    int threads;

    @Option(names = {"-p", "--prompt-tokens"}, defaultValue = "128", description = "prefill batch (default ${DEFAULT-VALUE})")
    int promptTokens;

    @Option(names = {"-n", "--gen-tokens"}, defaultValue = "32", description = "decoded tokens (default ${DEFAULT-VALUE})")
    int genTokens;

    @Option(names = {"-r", "--runs"}, defaultValue = "5", description = "runs per test; the median is reported (default ${DEFAULT-VALUE})")
    int runs;

    @Option(names = "--bandwidth", description = "also measure the machine's memory read bandwidth and report decode as a fraction of its limit")
    boolean bandwidth;

    @Option(names = "--kv", defaultValue = "F32", description = "KV cache type: F32 or F16 (default ${DEFAULT-VALUE})")
    LlamaModel.KvType kv;

    @Option(names = "--sparse-kernels", defaultValue = "AUTO", description = "a pruned sparse folder's matrices: AUTO (sparse kernels when the dense matrices exceed the last-level cache, else dense), SPARSE or DENSE (default ${DEFAULT-VALUE})")
    dev.lathe.prune.SparseSource.Kernels sparseKernels;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        if (promptTokens < 1 || genTokens < 1 || runs < 1) throw new LatheException("--prompt-tokens, --gen-tokens and --runs must be >= 1");
        try (LoadedModel lm = LoadedModel.open(model, threads, sparseKernels)) {
            if (promptTokens + genTokens > lm.model.config().contextLength()) {
                throw new LatheException(model, "prompt + generated tokens (" + (promptTokens + genTokens) + ") exceed the context length " + lm.model.config().contextLength());
            }
            Bench.Report r = Bench.run(lm.model, promptTokens, genTokens, runs, kv, 1234);
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("model", model.toString());
            o.put("threads", lm.model.pool().threads());
            o.put("weight_bytes", lm.model.storageBytes());
            lm.sparseKernels().ifPresent(k -> o.put("sparse_kernels", k));
            o.put("prompt_tokens", promptTokens);
            o.put("gen_tokens", genTokens);
            o.put("runs", runs);
            o.put("prefill_tps", r.prefillTokensPerSecond());
            o.put("decode_tps", r.decodeTokensPerSecond());
            o.put("prefill_tps_runs", r.prefillRuns());
            o.put("decode_tps_runs", r.decodeRuns());
            double effective = lm.model.storageBytes() * r.decodeTokensPerSecond() / 1e9;
            o.put("decode_weight_read_gbps", effective);
            if (bandwidth) {
                double bw = MemoryBandwidth.readGBps(lm.model.pool(), 1L << 30, 5);
                o.put("memory_read_gbps", bw);
                o.put("decode_fraction_of_bandwidth_limit", effective / bw);
            }
            o.put("peak_rss_mb", r.peakRssBytes() / 1048576.0);
            if (json) {
                stdout.println(Json.of(o));
            } else {
                stdout.printf(Locale.ROOT, "%s, %d threads, %.1f MiB of weights%n", model, lm.model.pool().threads(), lm.model.storageBytes() / 1048576.0);
                lm.sparseKernels().ifPresent(k -> stdout.println("kernels for the compressed matrices: " + k));
                stdout.printf(Locale.ROOT, "prefill pp%d  %.2f tok/s (median of %d)%n", promptTokens, r.prefillTokensPerSecond(), runs);
                stdout.printf(Locale.ROOT, "decode  tg%d  %.2f tok/s (median of %d)  = %.2f GB/s of weights%n", genTokens, r.decodeTokensPerSecond(), runs, effective);
                if (bandwidth) stdout.printf(Locale.ROOT, "memory read bandwidth %.2f GB/s: decode at %.0f%% of the limit%n",
                        (double) o.get("memory_read_gbps"), 100 * (double) o.get("decode_fraction_of_bandwidth_limit"));
                stdout.printf(Locale.ROOT, "peak RSS %.1f MB%n", (double) o.get("peak_rss_mb"));
            }
            return 0;
        }
    }
}
