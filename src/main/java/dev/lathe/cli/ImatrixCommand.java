package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.compress.CalibrationData;
import dev.lathe.compress.Calibrator;
import dev.lathe.compress.ImatrixCollector;
import dev.lathe.compress.QuantPlan;
import dev.lathe.compress.WeightFormat;
import dev.lathe.model.Parallel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "imatrix", mixinStandardHelpOptions = true,
        description = {"Compute an importance matrix (mean x² per input column of every projection) over a text, as",
                "llama-imatrix does (consecutive chunks of --ctx tokens, BOS first), and write llama.cpp's imatrix.dat."})
final class ImatrixCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "model: GGUF file, Hugging Face folder or llama2.c .bin")
    Path model;

    @Option(names = {"-f", "--text"}, required = true, description = "UTF-8 calibration text")
    Path text;

    @Option(names = {"-o", "--output"}, defaultValue = "imatrix.dat", description = "output file (default ${DEFAULT-VALUE})")
    Path out;

    @Option(names = {"-c", "--ctx"}, defaultValue = "512", description = "chunk length in tokens (default ${DEFAULT-VALUE})")
    int ctx;

    @Option(names = "--chunks", defaultValue = "-1", description = "use at most this many chunks (default: all)")
    int chunks;

    @Option(names = "--f32-attention", description = "keep attention in F32 (default: round K/V like llama.cpp's F16 KV cache)")
    boolean f32Attention;

    @Option(names = {"-t", "--threads"}, defaultValue = "0", description = "threads (default: all cores)")
    int threads;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        long t0 = System.nanoTime();
        try (LoadedModel lm = LoadedModel.open(model, threads)) {
            if (ctx > lm.model.config().contextLength()) {
                throw new LatheException(model, "--ctx " + ctx + " exceeds the model's context length " + lm.model.config().contextLength());
            }
            CalibrationData data = CalibrationData.chunks(text, lm.requireTokenizer(), ctx, chunks);
            ImatrixCollector col = new ImatrixCollector();
            try (CliProgress bar = new CliProgress("imatrix")) {
                Calibrator.run(lm.source, data, QuantPlan.uniform(lm.source, WeightFormat.parse("f32")), List.of(col),
                        new Calibrator.Options(!f32Attention, Parallel.common()), (stage, d, t, eta) -> bar.update(d, t, stage));
            }
            col.writeLegacy(out, text.toString());
            Map<String, Object> j = new LinkedHashMap<>();
            j.put("model", model.toString());
            j.put("output", out.toString());
            j.put("entries", col.entries().size());
            j.put("chunks", data.size());
            j.put("tokens", data.tokens());
            j.put("seconds", (System.nanoTime() - t0) / 1e9);
            if (json) stdout.println(Json.of(j));
            else stdout.printf(Locale.ROOT, "wrote %s: %d entries from %d chunks of %d tokens in %.1f s%n", out, col.entries().size(), data.size(), ctx,
                    (double) j.get("seconds"));
            return 0;
        }
    }
}
