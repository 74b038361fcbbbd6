package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.io.Converter;
import dev.lathe.io.gguf.GgufWriter;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RandomWeights;
import dev.lathe.tensor.GgmlType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "synth", mixinStandardHelpOptions = true,
        description = {"Write a random-weight model in the shape of a well-known one, for benchmarks",
                "(presets: tinyllama-1.1b, llama2-7b, llama3-8b, qwen2-0.5b). The GGUF carries a",
                "byte-fallback vocabulary of the right size so llama.cpp loads it too."})
final class SynthCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--preset", defaultValue = "tinyllama-1.1b", description = "shape (default ${DEFAULT-VALUE})")
    String preset;

    @Option(names = "--layers", description = "override the number of layers (smaller test models)")
    Integer layers;

    @Option(names = "--type", defaultValue = "f16", description = "f32, f16, bf16, q8_0 or q4_0 (default ${DEFAULT-VALUE})")
    String type;

    @Option(names = "--seed", defaultValue = "1234", description = "weights seed (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = {"-o", "--output"}, required = true, description = "output .gguf")
    Path output;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        GgmlType t = ConvertCommand.parseType(type);
        ModelConfig c = RandomWeights.preset(preset);
        if (layers != null) {
            if (layers < 1) throw new LatheException("--layers must be >= 1");
            c = new ModelConfig(c.arch(), c.dim(), layers, c.nHeads(), c.nKvHeads(), c.headDim(), c.ffnDim(), c.vocabSize(), c.normEps(),
                    c.ropeTheta(), c.ropeStyle(), c.ropeScaling(), c.contextLength(), c.tiedEmbeddings(), c.qkvBias());
        }
        long t0 = System.nanoTime();
        GgmlType weightsType = t == GgmlType.F16 || t == GgmlType.BF16 ? t : GgmlType.F32;
        try (RandomWeights w = new RandomWeights(c, weightsType, seed); CliProgress bar = new CliProgress("synth")) {
            GgufWriter g = Converter.ggufWriter(w, t, "synthetic-" + preset);
            addByteVocabulary(g, c.vocabSize());
            g.write(output, (stage, done, total) -> bar.update(done, total, stage));
        }
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("output", output.toString());
        o.put("preset", preset);
        o.put("type", t.name());
        o.put("bytes", ConvertCommand.size(output));
        o.put("seconds", (System.nanoTime() - t0) / 1e9);
        if (json) stdout.println(Json.of(o));
        else stdout.printf(Locale.ROOT, "wrote %s (%s %s, %,d bytes)%n", output, preset, t, (long) o.get("bytes"));
        return 0;
    }

    /** A SentencePiece-style vocabulary: unk, BOS, EOS, the 256 byte tokens, then filler pieces. */
    static void addByteVocabulary(GgufWriter g, int vocab) {
        if (vocab < 259) throw new LatheException("vocabulary of " + vocab + " is too small for a byte vocabulary");
        String[] tokens = new String[vocab];
        float[] scores = new float[vocab];
        int[] types = new int[vocab];
        tokens[0] = "<unk>";
        types[0] = 2;
        tokens[1] = "<s>";
        types[1] = 3;
        tokens[2] = "</s>";
        types[2] = 3;
        for (int b = 0; b < 256; b++) {
            tokens[3 + b] = String.format(Locale.ROOT, "<0x%02X>", b);
            types[3 + b] = 6;
        }
        for (int i = 259; i < vocab; i++) {
            tokens[i] = "\u2581w" + i;
            types[i] = 1;
            scores[i] = -i;
        }
        g.setString("tokenizer.ggml.model", "llama");
        g.setString("tokenizer.ggml.pre", "default");
        g.setStrings("tokenizer.ggml.tokens", tokens);
        g.setFloats("tokenizer.ggml.scores", scores);
        g.setInts("tokenizer.ggml.token_type", types);
        g.setU32("tokenizer.ggml.bos_token_id", 1);
        g.setU32("tokenizer.ggml.eos_token_id", 2);
        g.setU32("tokenizer.ggml.unknown_token_id", 0);
        g.setBool("tokenizer.ggml.add_bos_token", true);
        g.setBool("tokenizer.ggml.add_eos_token", false);
    }
}
