package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.io.Converter;
import dev.lathe.io.ModelLoader;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "convert", mixinStandardHelpOptions = true,
        description = {"Convert between Hugging Face safetensors, GGUF and llama2.c checkpoints.",
                "Output format: GGUF when OUT ends in .gguf (or --format gguf), else a Hugging Face folder.",
                "GGUF types: f32, f16, bf16, q8_0, q4_0 (round-to-nearest, norms stay F32); HF: f32, f16, bf16."})
final class ConvertCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "input model (GGUF, HF folder or safetensors file, llama2.c .bin)")
    Path in;

    @Parameters(index = "1", description = "output .gguf file or HF folder")
    Path out;

    @Option(names = "--type", defaultValue = "f16", description = "element type (default ${DEFAULT-VALUE})")
    String type;

    @Option(names = "--format", description = "gguf or hf (default: from OUT's name)")
    String format;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        GgmlType t = ConvertCommand.parseType(type);
        String fmt = format != null ? format.toLowerCase(Locale.ROOT) : out.toString().toLowerCase(Locale.ROOT).endsWith(".gguf") ? "gguf" : "hf";
        if (!fmt.equals("gguf") && !fmt.equals("hf")) throw new LatheException("--format must be gguf or hf, not '" + format + "'");
        if (fmt.equals("gguf") && !Converter.GGUF_TYPES.contains(t)) throw new LatheException("GGUF conversion supports " + Converter.GGUF_TYPES + ", not " + t + " (use `quantize` for other types)");
        if (fmt.equals("hf") && !Converter.HF_TYPES.contains(t)) throw new LatheException("HF output supports " + Converter.HF_TYPES + ", not " + t);
        long t0 = System.nanoTime();
        try (WeightSource src = ModelLoader.open(in); CliProgress bar = new CliProgress("convert")) {
            ModelLoader.checkTensors(src);
            if (fmt.equals("gguf")) {
                Converter.toGguf(src, out, t, (stage, done, total) -> bar.update(done, total, stage));
            } else {
                Converter.toHf(src, out, t, 5L << 30, (stage, done, total) -> bar.update(done, total, stage));
            }
        }
        long bytes = size(out);
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("input", in.toString());
        o.put("output", out.toString());
        o.put("format", fmt);
        o.put("type", t.name());
        o.put("bytes", bytes);
        o.put("seconds", (System.nanoTime() - t0) / 1e9);
        if (json) stdout.println(Json.of(o));
        else stdout.printf(Locale.ROOT, "wrote %s (%s, %s, %,d bytes) in %.1f s%n", out, fmt, t, bytes, (double) o.get("seconds"));
        return 0;
    }

    /** A tensor type named on the command line (any case), or a one-line error. */
    static GgmlType parseType(String name) {
        try {
            return GgmlType.valueOf(name.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new LatheException("unknown --type '" + name + "'");
        }
    }

    static long size(Path p) {
        try (var s = Files.isDirectory(p) ? Files.walk(p) : java.util.stream.Stream.of(p)) {
            return s.filter(Files::isRegularFile).mapToLong(f -> {
                try {
                    return Files.size(f);
                } catch (java.io.IOException e) {
                    return 0;
                }
            }).sum();
        } catch (java.io.IOException e) {
            return -1;
        }
    }
}
