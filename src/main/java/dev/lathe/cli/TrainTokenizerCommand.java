package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.tokenizer.train.SpmBpeTrainer;
import dev.lathe.train.TextCorpus;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "train-tokenizer", mixinStandardHelpOptions = true,
        description = {"Train a SentencePiece-style BPE tokenizer with byte fallback (Llama 2 layout) on UTF-8 text.",
                "Writes tokenizer.json, tokenizer_config.json and tokenizer.gguf (tokenizer.ggml.* metadata) into -o."})
final class TrainTokenizerCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--data", required = true, arity = "1..*", description = "text files or folders (walked recursively)")
    List<Path> data;

    @Option(names = "--vocab", required = true, description = "vocabulary size, including the 259 special and byte tokens")
    int vocab;

    @Option(names = {"-o", "--out"}, required = true, description = "output folder")
    Path out;

    @Option(names = "--seed", defaultValue = "0", description = "breaks ties between equally frequent pairs (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--coverage", defaultValue = "0.9995", description = "character coverage of the alphabet (default ${DEFAULT-VALUE})")
    double coverage;

    @Option(names = "--max-piece-length", defaultValue = "16", description = "longest piece in characters (default ${DEFAULT-VALUE})")
    int maxPieceLength;

    @Option(names = "--min-count", defaultValue = "2", description = "pairs seen fewer times are never merged (default ${DEFAULT-VALUE})")
    int minCount;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        SpmBpeTrainer.Options o = new SpmBpeTrainer.Options(vocab, coverage, maxPieceLength, minCount, seed);
        if (java.nio.file.Files.exists(out) && !java.nio.file.Files.isDirectory(out)) throw new LatheException(out, "exists and is not a folder");
        long t0 = System.nanoTime();
        TextCorpus corpus = TextCorpus.of(data, false);
        SpmBpeTrainer.Result r;
        try (CliProgress bar = new CliProgress("merges")) {
            r = SpmBpeTrainer.train(corpus, o, (d, t) -> bar.update(d, t, ""));
        }
        SpmBpeTrainer.save(r.vocabulary(), out);
        double secs = (System.nanoTime() - t0) / 1e9;
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("out", out.toString());
        m.put("files", corpus.files().size());
        m.put("vocab", r.vocabulary().size());
        m.put("merges", r.merges().size());
        m.put("alphabet", r.alphabet().size());
        m.put("words", r.words());
        m.put("unique_words", r.uniqueWords());
        m.put("characters", r.characters());
        m.put("seed", seed);
        m.put("seconds", secs);
        if (json) {
            stdout.println(Json.of(m));
        } else {
            stdout.printf(Locale.ROOT, "trained a %d-token vocabulary (%d merges, %d characters, 259 special/byte tokens) on %d files, "
                            + "%d words (%d distinct) in %.1f s%n", r.vocabulary().size(), r.merges().size(), r.alphabet().size(),
                    corpus.files().size(), r.words(), r.uniqueWords(), secs);
            stdout.printf(Locale.ROOT, "wrote %s/{tokenizer.json, tokenizer_config.json, %s}%n", out, SpmBpeTrainer.GGUF_METADATA);
        }
        return 0;
    }
}
