package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.eval.Perplexity;
import dev.lathe.eval.Sensitivity;
import dev.lathe.model.Parallel;
import dev.lathe.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "sensitivity", mixinStandardHelpOptions = true,
        description = {"Per-tensor quantization sensitivity: quantize each weight alone (round-to-nearest to --type,",
                "everything else as stored) and measure the KL divergence it causes against the unchanged model on a",
                "text; sorted, most sensitive first. Use calibration text here, not the text you evaluate on."})
final class SensitivityCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "model: GGUF file, Hugging Face folder or llama2.c .bin")
    Path model;

    @Option(names = "--type", required = true, description = "Q4_K, Q2_K, Q4_0, ... (a mix name means its base type) or int4-g128, ...")
    String type;

    @Option(names = "--text", required = true, description = "UTF-8 text file or folder (its .txt files in path order)")
    Path text;

    @Option(names = {"-c", "--ctx"}, defaultValue = "256", description = "chunk length in tokens (default ${DEFAULT-VALUE})")
    int ctx;

    @Option(names = "--chunks", defaultValue = "16", description = "chunks of the text to use (default ${DEFAULT-VALUE})")
    int chunks;

    @Option(names = "--tensors", split = ",", description = "only these tensors (canonical names, comma separated)")
    List<String> tensors;

    @Option(names = {"-t", "--threads"}, defaultValue = "0", description = "threads (default: all cores)")
    int threads;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        if (ctx < 8) throw new LatheException("--ctx must be at least 8");
        if (chunks < 1) throw new LatheException("--chunks must be at least 1");
        String body = EvalCommand.readText(text);
        long t0 = System.nanoTime();
        try (LoadedModel lm = LoadedModel.open(model, threads)) {
            if (ctx > lm.model.config().contextLength()) {
                throw new LatheException(model, "--ctx " + ctx + " exceeds the model's context length " + lm.model.config().contextLength());
            }
            Tokenizer tok = lm.requireTokenizer();
            int[] ids = tok.encode(body, tok.addBos(), false);
            Perplexity.Options o = new Perplexity.Options(ctx, tok.addBos() ? tok.bosId() : -1, -1, chunks);
            if (Perplexity.chunks(ids.length, o) < 1) throw new LatheException(text, "too short: " + ids.length + " tokens, one chunk needs --ctx " + ctx);
            List<Sensitivity.Entry> res;
            try (CliProgress bar = new CliProgress("sensitivity " + type)) {
                res = Sensitivity.run(lm.source, type, tensors, ids, o, Parallel.common(),
                        (d, t, last, eta) -> bar.update(d, t, String.format(Locale.ROOT, "%s KLD %.5f", last.tensor(), last.kldMean())));
            }
            if (json) {
                Map<String, Object> j = new LinkedHashMap<>();
                j.put("model", model.toString());
                j.put("type", type);
                j.put("text", text.toString());
                j.put("ctx", ctx);
                j.put("chunks", Perplexity.chunks(ids.length, o));
                List<Map<String, Object>> rows = new ArrayList<>();
                for (Sensitivity.Entry e : res) rows.add(e.toMap());
                j.put("tensors", rows);
                j.put("seconds", (System.nanoTime() - t0) / 1e9);
                stdout.println(Json.of(j));
            } else {
                stdout.printf(Locale.ROOT, "%-26s %-8s %10s %6s %10s %10s %7s %9s%n", "tensor", "format", "params", "bpw", "KLD mean", "KLD p99", "top-1", "PPL ratio");
                for (Sensitivity.Entry e : res) {
                    stdout.printf(Locale.ROOT, "%-26s %-8s %10d %6.3f %10.6f %10.6f %7.4f %9.5f%n", e.tensor(), e.format(), e.params(),
                            e.bitsPerWeight(), e.kldMean(), e.kldP99(), e.top1(), e.pplRatio());
                }
            }
            return 0;
        }
    }
}
