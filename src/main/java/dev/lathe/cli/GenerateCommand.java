package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.model.Generator;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.Sampler;
import dev.lathe.tokenizer.StreamDecoder;
import dev.lathe.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "generate", mixinStandardHelpOptions = true, description = "Continue a prompt with the model.")
final class GenerateCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "model: GGUF file, Hugging Face folder or llama2.c .bin")
    Path model;

    @Option(names = {"-p", "--prompt"}, defaultValue = "", description = "prompt text (BOS is added as the model asks)")
    String prompt;

    @Option(names = {"-n", "--tokens"}, defaultValue = "64", description = "new tokens to generate (default ${DEFAULT-VALUE})")
    int tokens;

    @Option(names = "--temp", defaultValue = "0.8", description = "temperature; 0 = greedy (default ${DEFAULT-VALUE})")
    float temp;

    @Option(names = "--top-p", defaultValue = "0.95", description = "nucleus sampling threshold (default ${DEFAULT-VALUE})")
    float topP;

    @Option(names = "--seed", defaultValue = "42", description = "sampling seed (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = {"-t", "--threads"}, defaultValue = "0", description = "threads (default: all cores)")
    int threads;

    @Option(names = "--sparse-kernels", defaultValue = "AUTO", description = "a pruned sparse folder's matrices: AUTO (sparse kernels when the dense matrices exceed the last-level cache, else dense), SPARSE or DENSE (default ${DEFAULT-VALUE})")
    dev.lathe.prune.SparseSource.Kernels sparseKernels;

    @Option(names = "--json", description = "print one JSON object instead of streaming text")
    boolean json;

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        if (tokens < 0) throw new LatheException("--tokens must be >= 0");
        if (temp < 0 || !Float.isFinite(temp)) throw new LatheException("--temp must be a finite number >= 0");
        if (!(topP > 0 && topP <= 1)) throw new LatheException("--top-p must be in (0, 1]");
        try (LoadedModel lm = LoadedModel.open(model, threads, sparseKernels)) {
            Tokenizer tok = lm.requireTokenizer();
            int[] ids = tok.encode(prompt, tok.addBos(), false);
            if (ids.length == 0) throw new LatheException("the prompt is empty and the model adds no BOS token; give --prompt");
            int ctx = Math.min(lm.model.config().contextLength(), ids.length + tokens);
            if (ids.length + tokens > lm.model.config().contextLength()) {
                throw new LatheException("prompt (" + ids.length + " tokens) + " + tokens + " new tokens exceed the context length " + lm.model.config().contextLength());
            }
            LlamaModel.Session s = lm.model.newSession(ctx);
            Sampler sampler = temp == 0 ? Sampler.greedy() : new Sampler(temp, topP, seed);
            StreamDecoder dec = tok.streamDecoder();
            StringBuilder text = new StringBuilder();
            if (!json) stdout.print(prompt);
            Generator.Result r = Generator.generate(lm.model, s, ids, tokens, sampler, tok::isEog, id -> {
                String piece = dec.push(id);
                text.append(piece);
                if (!json) {
                    stdout.print(piece);
                    stdout.flush();
                }
            });
            String tail = dec.flush();
            text.append(tail);
            double ptps = r.prefillTokensPerSecond(ids.length), dtps = r.decodeTokensPerSecond();
            if (json) {
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("prompt", prompt);
                out.put("prompt_tokens", ids.length);
                out.put("text", text.toString());
                out.put("tokens", r.tokens());
                out.put("stopped_at_eos", r.stopped());
                out.put("prefill_tps", ptps);
                out.put("decode_tps", dtps);
                out.put("seed", seed);
                stdout.println(Json.of(out));
            } else {
                stdout.println(tail);
                System.err.printf(Locale.ROOT, "[%d prompt tokens, %d generated; prefill %.1f tok/s, decode %.1f tok/s]%n",
                        ids.length, r.tokens().length, ptps, dtps);
            }
            return 0;
        }
    }
}
