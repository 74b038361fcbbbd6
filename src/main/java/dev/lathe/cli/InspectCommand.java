package dev.lathe.cli;

import dev.lathe.io.ModelLoader;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;

@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Show a model's architecture, tensors, types, sizes and bits per weight.")
final class InspectCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "GGUF file, Hugging Face folder or safetensors file, or llama2.c .bin")
    Path model;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Option(names = "--tensors", description = "list every tensor (default: only in --json)")
    boolean tensors;

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        try (WeightSource src = ModelLoader.open(model)) {
            ModelConfig c = src.config();
            long params = 0, bytes = 0;
            Map<String, long[]> byType = new TreeMap<>();
            List<Map<String, Object>> list = new ArrayList<>();
            for (String name : src.tensorNames()) {
                Tensor t = src.tensor(name);
                long n = t.numElements();
                long b = t.data().byteSize();
                params += n;
                bytes += b;
                byType.computeIfAbsent(t.type().name(), k -> new long[2]);
                byType.get(t.type().name())[0] += n;
                byType.get(t.type().name())[1] += b;
                Map<String, Object> e = new LinkedHashMap<>();
                e.put("name", name);
                e.put("type", t.type().name());
                e.put("shape", t.shape());
                e.put("bytes", b);
                list.add(e);
            }
            double bpw = params == 0 ? 0 : 8.0 * bytes / params;
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("path", src.path().toString());
            out.put("format", ModelLoader.detect(model).name());
            out.put("config", c);
            out.put("parameters", params);
            out.put("bytes", bytes);
            out.put("bits_per_weight", bpw);
            Map<String, Object> types = new LinkedHashMap<>();
            byType.forEach((k, v) -> types.put(k, Map.of("parameters", v[0], "bytes", v[1])));
            out.put("types", types);
            out.put("tensors", list);
            if (json) {
                stdout.println(Json.of(out));
                return 0;
            }
            stdout.printf(Locale.ROOT, "%s  (%s)%n", src.path(), out.get("format"));
            stdout.printf(Locale.ROOT, "architecture  %s, %d layers, hidden %d, FFN %d, heads %d (KV %d, head size %d), vocab %d%n",
                    c.arch(), c.nLayers(), c.dim(), c.ffnDim(), c.nHeads(), c.nKvHeads(), c.headDim(), c.vocabSize());
            stdout.printf(Locale.ROOT, "              RMSNorm eps %g, RoPE theta %g (%s)%s, context %d%s%s%n", c.normEps(), c.ropeTheta(),
                    c.ropeStyle(), c.ropeScaling() != null ? " with " + c.ropeScaling() : "", c.contextLength(),
                    c.tiedEmbeddings() ? ", tied embeddings" : "", c.qkvBias() ? ", q/k/v bias" : "");
            stdout.printf(Locale.ROOT, "parameters    %,d in %d tensors%n", params, list.size());
            stdout.printf(Locale.ROOT, "size          %,d bytes (%.2f MiB), %.3f bits per weight%n", bytes, bytes / 1048576.0, bpw);
            byType.forEach((k, v) -> stdout.printf(Locale.ROOT, "  %-8s %,14d weights %,14d bytes  %.3f bpw%n", k, v[0], v[1], 8.0 * v[1] / v[0]));
            if (tensors) {
                for (Map<String, Object> e : list) {
                    stdout.printf(Locale.ROOT, "  %-32s %-7s %-18s %,d%n", e.get("name"), e.get("type"), Arrays.toString((long[]) e.get("shape")), e.get("bytes"));
                }
            }
            return 0;
        }
    }

    static String bpw(GgmlType t) {
        return String.format(Locale.ROOT, "%.2f", t.bitsPerWeight());
    }
}
