package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.eval.KlDivergence;
import dev.lathe.eval.Perplexity;
import dev.lathe.eval.TextBytes;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.train.TextCorpus;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "eval", mixinStandardHelpOptions = true,
        description = {"Perplexity and bits per byte on a text (llama-perplexity's convention: chunks of --ctx tokens,",
                "BOS first, the second half of each chunk scored); with --reference also KL divergence,",
                "top-1 agreement and the perplexity ratio against the reference model."})
final class EvalCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "model: GGUF file, Hugging Face folder or llama2.c .bin")
    Path model;

    @Option(names = "--text", required = true, description = "UTF-8 text file, or a folder: its .txt files (recursively) in path order, "
            + "concatenated byte for byte as `cat` would")
    Path text;

    @Option(names = {"-c", "--ctx"}, defaultValue = "512", description = "chunk length in tokens (default ${DEFAULT-VALUE})")
    int ctx;

    @Option(names = "--chunks", defaultValue = "-1", description = "evaluate at most this many chunks (default: all)")
    int chunks;

    @Option(names = "--reference", description = "reference model for KL divergence and top-1 agreement")
    Path reference;

    @Option(names = {"-t", "--threads"}, defaultValue = "0", description = "threads (default: all cores)")
    int threads;

    @Option(names = "--sparse-kernels", defaultValue = "AUTO", description = "a pruned sparse folder's matrices: AUTO (sparse kernels when the dense matrices exceed the last-level cache, else dense), SPARSE or DENSE (default ${DEFAULT-VALUE})")
    dev.lathe.prune.SparseSource.Kernels sparseKernels;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        String body = readText(text); // invalid UTF-8 is reported with its byte offset
        if (ctx < 8) throw new LatheException("--ctx must be at least 8");
        try (LoadedModel lm = LoadedModel.open(model, threads, sparseKernels)) {
            if (ctx > lm.model.config().contextLength()) {
                throw new LatheException(model, "--ctx " + ctx + " exceeds the model's context length " + lm.model.config().contextLength());
            }
            Tokenizer tok = lm.requireTokenizer();
            // llama-perplexity reads the file with one trailing newline removed
            if (body.endsWith("\n")) body = body.substring(0, body.length() - 1);
            int[] ids = tok.encode(body, tok.addBos(), false);
            int bos = tok.addBos() ? tok.bosId() : -1;
            Perplexity.Options o = new Perplexity.Options(ctx, bos, -1, chunks);
            int n = Perplexity.chunks(ids.length, o);
            if (n < 1) throw new LatheException(text, "too short: " + ids.length + " tokens, one chunk needs --ctx " + ctx);
            long scoredBytes = TextBytes.scoredBytes(tok, ids, o);
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("model", model.toString());
            out.put("text", text.toString());
            out.put("tokens", ids.length);
            out.put("ctx", ctx);
            out.put("chunks", n);
            try (CliProgress bar = new CliProgress(reference == null ? "perplexity" : "perplexity+KLD")) {
                if (reference == null) {
                    Perplexity.Result r = Perplexity.compute(lm.model, ids, o,
                            (d, t, running, eta) -> bar.update(d, t, String.format(Locale.ROOT, "ppl %.4f", running)));
                    out.put("ppl", r.ppl());
                    out.put("bpb", r.bitsPerByte(scoredBytes));
                    out.put("scored_tokens", r.scoredTokens());
                    out.put("scored_bytes", scoredBytes);
                } else {
                    try (LoadedModel ref = LoadedModel.open(reference, threads)) {
                        if (ref.model.vocabSize() != lm.model.vocabSize()) {
                            throw new LatheException(reference, "vocabulary size " + ref.model.vocabSize() + " differs from the model's " + lm.model.vocabSize());
                        }
                        KlDivergence.Result r = KlDivergence.compute(ref.model, lm.model, ids, o,
                                (d, t, running, eta) -> bar.update(d, t, String.format(Locale.ROOT, "KLD %.6f", running)));
                        double nllModel = Math.log(r.pplModel()) * r.count();
                        out.put("ppl", r.pplModel());
                        out.put("bpb", nllModel / Math.log(2) / scoredBytes);
                        out.put("scored_tokens", r.count());
                        out.put("scored_bytes", scoredBytes);
                        out.put("reference", reference.toString());
                        out.put("ppl_reference", r.pplRef());
                        out.put("ppl_ratio", r.pplRatio());
                        out.put("kld_mean", r.mean());
                        out.put("kld_median", r.median());
                        out.put("kld_p99", r.p99());
                        out.put("kld_max", r.max());
                        out.put("top1", r.sameTop());
                    }
                }
            }
            if (json) {
                stdout.println(Json.of(out));
            } else {
                stdout.printf(Locale.ROOT, "%s on %s: %d tokens, %d chunks of %d%n", model, text, ids.length, n, ctx);
                stdout.printf(Locale.ROOT, "perplexity     %.4f%n", (double) out.get("ppl"));
                stdout.printf(Locale.ROOT, "bits per byte  %.4f%n", (double) out.get("bpb"));
                if (reference != null) {
                    stdout.printf(Locale.ROOT, "reference ppl  %.4f  (ratio %.5f)%n", (double) out.get("ppl_reference"), (double) out.get("ppl_ratio"));
                    stdout.printf(Locale.ROOT, "KLD mean %.6f  median %.6f  p99 %.6f  max %.6f%n", (double) out.get("kld_mean"),
                            (double) out.get("kld_median"), (double) out.get("kld_p99"), (double) out.get("kld_max"));
                    stdout.printf(Locale.ROOT, "top-1 agreement %.4f%n", (double) out.get("top1"));
                }
            }
            return 0;
        }
    }

    /** The file's text, or the concatenation of a folder's .txt files in path order (like {@code cat DIR/*.txt}). */
    static String readText(Path path) {
        if (!java.nio.file.Files.isDirectory(path)) return TextCorpus.readUtf8(path);
        java.util.List<Path> files;
        try (java.util.stream.Stream<Path> s = java.nio.file.Files.walk(path)) {
            files = s.filter(java.nio.file.Files::isRegularFile).filter(f -> f.getFileName().toString().endsWith(".txt")).sorted().toList();
        } catch (java.io.IOException e) {
            throw new LatheException(path, "cannot list the folder: " + e.getMessage());
        }
        if (files.isEmpty()) throw new LatheException(path, "the folder holds no .txt file");
        StringBuilder sb = new StringBuilder();
        for (Path f : files) sb.append(TextCorpus.readUtf8(f));
        return sb.toString();
    }
}
