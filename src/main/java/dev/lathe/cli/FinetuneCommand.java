package dev.lathe.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lathe.LatheException;
import dev.lathe.io.Converter;
import dev.lathe.io.ModelLoader;
import dev.lathe.model.WeightSource;
import dev.lathe.prune.PrunedWeights;
import dev.lathe.prune.SparseSafetensors;
import dev.lathe.prune.SparseSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;
import dev.lathe.train.CrossEntropyLoss;
import dev.lathe.train.ParamMask;
import dev.lathe.train.TextCorpus;
import dev.lathe.train.TokenData;
import dev.lathe.train.TrainConfig;
import dev.lathe.train.TrainListener;
import dev.lathe.train.TrainModel;
import dev.lathe.train.TrainedWeights;
import dev.lathe.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "finetune", aliases = "recover", mixinStandardHelpOptions = true,
        description = {"Fine-tune a model (any loadable GGUF or HF folder, pruned or not) on UTF-8 text with its own tokenizer. "
                + "With --keep-sparsity (on by default when a weight matrix is at least 1%% exact zeros) every zero of the "
                + "2-D weights is held at exactly zero: a pruned model recovers quality and keeps its sparsity and N:M pattern.",
                "OUT is a GGUF file when it ends in .gguf, otherwise a Hugging Face folder, written in the input's sparse "
                + "layout when the input is a compressed-tensors sparse folder; written atomically at the end. Progress "
                + "goes to a checkpoint in the work folder (OUT.work unless --work): --until stops early, --resume continues "
                + "bit-identically (the masks are in the checkpoint). The last --validation-fraction of each data file is "
                + "held out for validation loss and bits per byte, measured before and after."})
final class FinetuneCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "model: GGUF, HF folder (dense or compressed-tensors sparse), safetensors file, llama2.c .bin")
    Path in;

    @Option(names = {"-o", "--output"}, required = true, description = "output .gguf file, or HF folder (new or empty)")
    Path out;

    @Option(names = "--data", arity = "1..*", description = "training text: files or folders (walked recursively)")
    List<Path> data;

    @Option(names = "--steps", defaultValue = "200", description = "optimizer steps (default ${DEFAULT-VALUE})")
    long steps;

    @Option(names = "--lr", defaultValue = "1e-4", description = "peak learning rate (default ${DEFAULT-VALUE})")
    double lr;

    @Option(names = "--min-lr", description = "final learning rate of the cosine decay (default lr/10)")
    Double minLr;

    @Option(names = "--warmup", description = "linear warm-up steps (default steps/10, at most 100)")
    Long warmup;

    @Option(names = "--batch", defaultValue = "8", description = "sequences per step (default ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--seq-len", description = "tokens per sequence (default min(256, the model's context))")
    Integer seqLen;

    @Option(names = "--grad-accum", defaultValue = "1", description = "micro-batches per step (default ${DEFAULT-VALUE})")
    int gradAccum;

    @Option(names = "--weight-decay", defaultValue = "0", description = "decoupled weight decay (default ${DEFAULT-VALUE})")
    double weightDecay;

    @Option(names = "--clip", defaultValue = "1.0", description = "global gradient-norm clip, 0 for none (default ${DEFAULT-VALUE})")
    double clip;

    @Option(names = "--seed", defaultValue = "1", description = "data order seed (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--validation-fraction", defaultValue = "0.01", description = "tail of each file held out for validation (default ${DEFAULT-VALUE})")
    double validationFraction;

    @Option(names = "--eval-every", defaultValue = "0", description = "validation every N steps as well (default: only before and after)")
    long evalEvery;

    @Option(names = "--checkpoint-every", defaultValue = "50", description = "checkpoint every N steps, 0 for none (default ${DEFAULT-VALUE})")
    long checkpointEvery;

    @Option(names = "--work", description = "folder for the checkpoint and token cache (default: OUT.work, removed after success)")
    Path work;

    @Option(names = "--resume", description = "continue from the checkpoint in the work folder")
    boolean resume;

    @Option(names = "--until", description = "stop after this step with a checkpoint (continue with --resume)")
    Long until;

    @Option(names = "--keep-checkpoint", description = "keep the checkpoint after the output is written")
    boolean keepCheckpoint;

    @Option(names = "--keep-sparsity", negatable = true,
            description = "hold every exact zero of the 2-D weights at zero (default: on for matrices with at least 1%% zeros)")
    Boolean keepSparsity;

    @Option(names = "--tokenizer", description = "tokenizer folder (tokenizer.json) when the model carries none")
    Path tokenizerDir;

    @Option(names = "--dtype", description = "output weight type: f32, f16, bf16 (and q8_0, q4_0 for GGUF); default: the input's if F32/F16/BF16, else f16")
    String dtype;

    @Option(names = "--json", description = "print one JSON object at the end; progress only on stderr")
    boolean json;

    static final String CHECKPOINT = "checkpoint";
    static final String TOKEN_CACHE = "tokens.cache";
    static final String SOURCE_KEY = "finetune.source";
    /** A matrix with at least this fraction of exact zeros is treated as pruned when --keep-sparsity is not given. */
    static final double AUTO_SPARSITY = 0.01;

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        // ---- every argument is checked before anything is read or written
        if (data == null || data.isEmpty()) throw new LatheException("--data is required (training text files or folders)");
        if (steps < 1) throw new LatheException("--steps must be at least 1, got " + steps);
        if (!(lr > 0) || Double.isInfinite(lr)) throw new LatheException("--lr must be a positive number, got " + lr);
        double minLrV = minLr != null ? minLr : lr / 10;
        if (!(minLrV >= 0) || Double.isInfinite(minLrV)) throw new LatheException("--min-lr must be a non-negative number, got " + minLrV);
        long warmupV = warmup != null ? warmup : Math.min(100, steps / 10);
        if (warmupV < 0) throw new LatheException("--warmup must not be negative, got " + warmupV);
        if (batch < 1 || gradAccum < 1) throw new LatheException("--batch and --grad-accum must be at least 1");
        if (seqLen != null && seqLen < 2) throw new LatheException("--seq-len must be at least 2, got " + seqLen);
        if (!(weightDecay >= 0) || Double.isInfinite(weightDecay)) throw new LatheException("--weight-decay must be a non-negative number, got " + weightDecay);
        if (!(clip >= 0) || Double.isInfinite(clip)) throw new LatheException("--clip must be a non-negative number, got " + clip);
        if (!(validationFraction >= 0 && validationFraction < 0.5)) throw new LatheException("--validation-fraction must be in [0, 0.5), got " + validationFraction);
        if (evalEvery < 0 || checkpointEvery < 0) throw new LatheException("--eval-every and --checkpoint-every must not be negative");
        if (until != null && until < 1) throw new LatheException("--until must be at least 1, got " + until);
        boolean gguf = out.toString().toLowerCase(Locale.ROOT).endsWith(".gguf");
        GgmlType dt = dtype == null ? null : parseType(dtype, gguf);
        if (gguf) {
            if (Files.isDirectory(out)) throw new LatheException(out, "output is a folder, not a .gguf file");
        } else {
            SparseSafetensors.checkOutput(out);
        }
        Path workDir = work != null ? work : out.toAbsolutePath().resolveSibling(out.getFileName() + ".work");
        Path ckpt = workDir.resolve(CHECKPOINT);
        if (!resume && Files.exists(ckpt)) {
            throw new LatheException(ckpt, "a checkpoint already exists: continue with --resume, or remove it");
        }
        if (resume && !Files.isRegularFile(ckpt)) throw new LatheException(ckpt, "no checkpoint to resume from");
        for (Path d : data) if (!Files.exists(d)) throw new LatheException(d, "no such file or folder");

        boolean createdWork = !Files.isDirectory(workDir);
        long t0 = System.nanoTime();
        Map<String, Object> summary = new LinkedHashMap<>();
        try (WeightSource src = open(in)) {
            Tokenizer tok = tokenizerDir != null ? Tokenizers.fromHfFolder(tokenizerDir)
                    : Tokenizers.load(src).orElseThrow(() -> new LatheException(in, "the model has no tokenizer; give --tokenizer DIR"));
            int vocab = src.config().vocabSize();
            if (tok.vocabSize() > vocab) {
                throw new LatheException(tokenizerDir != null ? tokenizerDir : in, "the tokenizer has " + tok.vocabSize()
                        + " tokens, the model's vocabulary only " + vocab);
            }
            int ctx = src.config().contextLength();
            int t = seqLen != null ? seqLen : Math.min(256, ctx);
            if (ctx > 0 && t > ctx) throw new LatheException("--seq-len " + t + " exceeds the model's context of " + ctx);
            if (dt == null) dt = defaultType(src);
            TextCorpus corpus = TextCorpus.of(data, false);
            TrainConfig tc = TrainConfig.builder().seqLen(t).batchSize(batch).gradAccumSteps(gradAccum).steps(steps).lr(lr).minLr(minLrV)
                    .warmupSteps(Math.min(warmupV, steps)).weightDecay(weightDecay).clipNorm(clip).seed(seed).evalEvery(evalEvery)
                    .checkpointEvery(checkpointEvery).checkpointPath(ckpt).build();
            try {
                Files.createDirectories(workDir);
            } catch (IOException e) {
                throw new LatheException(workDir, "cannot create folder: " + e.getMessage(), e);
            }
            try {
                // tokens are cached in the work folder (a resume or a rerun with the same --work skips the encoding)
                TokenData td = TrainCommand.tokenData(corpus, tok, validationFraction, workDir.resolve(TOKEN_CACHE));
                if (td.train().length < t + 1) {
                    throw new LatheException(corpus.files().get(0), "the text is too small: " + td.train().length
                            + " training tokens, one sequence needs " + (t + 1));
                }
                int[] val = td.validation().length >= 2 ? td.validation() : null;
                run(stdout, src, td, val, tc, ckpt, gguf, dt, summary, t0);
            } catch (RuntimeException e) {
                if (createdWork && !Files.exists(ckpt)) deleteTree(workDir);
                throw e;
            }
        }
        return 0;
    }

    private void run(java.io.PrintWriter stdout, WeightSource src, TokenData td, int[] val, TrainConfig tc, Path ckpt,
                     boolean gguf, GgmlType dt, Map<String, Object> summary, long t0) {
        CrossEntropyLoss loss = new CrossEntropyLoss();
        String sourceId = in.toAbsolutePath().normalize().toString();
        Trainer trainer;
        TrainListener.ValidationInfo before = null;
        if (resume) {
            trainer = Trainer.resume(ckpt, tc, loss, td.train(), val, td.validationBytes());
            if (!trainer.model().config().equals(src.config())) {
                throw new LatheException(ckpt, "checkpoint model " + trainer.model().config() + " is not the input's " + src.config());
            }
            String from = trainer.checkpointInfo().get(SOURCE_KEY);
            if (from == null || !from.equals(sourceId)) {
                throw new LatheException(ckpt, "checkpoint was made from " + (from == null ? "another command" : from) + ", not " + sourceId);
            }
        } else {
            TrainModel model = TrainModel.load(src);
            trainer = new Trainer(model, tc, loss, td.train(), val, td.validationBytes());
            boolean auto = keepSparsity == null;
            if (auto || keepSparsity) trainer.setMasks(ParamMask.ofZeros(model, auto ? AUTO_SPARSITY : Double.MIN_VALUE));
            trainer.putCheckpointInfo(SOURCE_KEY, sourceId);
            if (val != null) before = trainer.validate();
        }
        Map<String, ParamMask> masks = trainer.masks();
        long maskedZeros = 0, maskedSize = 0;
        for (ParamMask m : masks.values()) {
            maskedZeros += m.maskedCount();
            maskedSize += m.size();
        }
        long target = until == null ? tc.steps() : Math.min(until, tc.steps());
        long startStep = trainer.step();
        long tokensPerStep = (long) tc.batchSize() * tc.seqLen() * tc.gradAccumSteps();
        summary.put("input", in.toString());
        summary.put("parameters", trainer.model().parameterCount());
        summary.put("masked_tensors", masks.size());
        summary.put("masked_zeros", maskedZeros);
        summary.put("masked_sparsity", maskedSize == 0 ? 0.0 : (double) maskedZeros / maskedSize);
        summary.put("train_tokens", td.train().length);
        summary.put("validation_tokens", td.validation().length);
        summary.put("tokens_per_step", tokensPerStep);
        summary.put("start_step", startStep);
        if (before != null) {
            summary.put("validation_loss_before", before.loss());
            summary.put("validation_bpb_before", before.bitsPerByte());
        }
        if (!json) {
            stdout.printf(Locale.ROOT, "%s: %,d parameters; %d matrices keep their %,d zeros (%.2f%% of them); %,d training tokens, %,d validation tokens; %d tokens/step; steps %d..%d of %d%n",
                    in, trainer.model().parameterCount(), masks.size(), maskedZeros, 100.0 * maskedZeros / Math.max(1, maskedSize),
                    td.train().length, td.validation().length, tokensPerStep, startStep, target, tc.steps());
            if (before != null) stdout.printf(Locale.ROOT, "before: validation loss %.4f, bits per byte %.4f%n", before.loss(), before.bitsPerByte());
            stdout.flush();
        }
        long tTrain = System.nanoTime();
        double[] last = {Double.NaN, Double.NaN, Double.NaN};
        try (CliProgress bar = new CliProgress("finetune")) {
            trainer.runUntil(target, new TrainListener() {
                @Override
                public void onStep(StepInfo i) {
                    last[0] = i.loss();
                    double secs = (System.nanoTime() - tTrain) / 1e9;
                    double tps = (i.step() - startStep) * tokensPerStep / Math.max(secs, 1e-9);
                    double eta = (target - i.step()) * tokensPerStep / Math.max(tps, 1e-9);
                    bar.update(i.step(), tc.steps(), String.format(Locale.ROOT, "loss %.4f  lr %.2e  %.0f tok/s  ETA(to step %d) %s%s",
                            i.loss(), i.lr(), tps, target, CliProgress.fmt(eta),
                            Double.isNaN(last[1]) ? "" : String.format(Locale.ROOT, "  val %.4f bpb %.4f", last[1], last[2])));
                }

                @Override
                public void onValidation(ValidationInfo v) {
                    last[1] = v.loss();
                    last[2] = v.bitsPerByte();
                    System.err.printf(Locale.ROOT, "step %d: validation loss %.4f, bits per byte %.4f%n", v.step(), v.loss(), v.bitsPerByte());
                }
            });
        }
        double trainSecs = (System.nanoTime() - tTrain) / 1e9;
        long done = trainer.step() - startStep;
        summary.put("step", trainer.step());
        summary.put("steps", tc.steps());
        summary.put("train_seconds", trainSecs);
        summary.put("tokens_per_second", done * tokensPerStep / Math.max(trainSecs, 1e-9));
        summary.put("train_loss", last[0]);
        if (trainer.step() < tc.steps()) {
            trainer.saveCheckpoint(ckpt);
            summary.put("checkpoint", ckpt.toString());
            summary.put("seconds", (System.nanoTime() - t0) / 1e9);
            if (json) stdout.println(Json.of(summary));
            else stdout.printf(Locale.ROOT, "stopped at step %d of %d: checkpoint %s (continue with --resume)%n", trainer.step(), tc.steps(), ckpt);
            return;
        }
        if (val != null) {
            TrainListener.ValidationInfo after = trainer.validate();
            summary.put("validation_loss", after.loss());
            summary.put("validation_bpb", after.bitsPerByte());
        }
        // zeros after training, over the masked matrices (the masks keep them; other weights are free)
        long zerosAfter = 0;
        for (String n : masks.keySet()) for (float v : trainer.model().param(n).data()) if (v == 0f) zerosAfter++;
        summary.put("masked_zeros_after", zerosAfter);
        String layout = write(src, trainer, gguf, dt, masks.isEmpty());
        summary.put("output", out.toString());
        summary.put("format", layout);
        summary.put("dtype", dt.name());
        if (!keepCheckpoint) {
            try {
                Files.deleteIfExists(ckpt);
            } catch (IOException e) {
                throw new LatheException(ckpt, "cannot remove: " + e.getMessage(), e);
            }
            if (work == null) deleteTree(ckpt.getParent());
        } else {
            summary.put("checkpoint", ckpt.toString());
        }
        summary.put("seconds", (System.nanoTime() - t0) / 1e9);
        if (json) {
            stdout.println(Json.of(summary));
        } else {
            stdout.printf(Locale.ROOT, "trained steps %d..%d in %.1f s (%.0f tokens/s), last train loss %.4f%n", startStep, trainer.step(),
                    trainSecs, (double) summary.get("tokens_per_second"), last[0]);
            if (summary.containsKey("validation_bpb")) {
                stdout.printf(Locale.ROOT, "after: validation loss %.4f, bits per byte %.4f%n", (double) summary.get("validation_loss"),
                        (double) summary.get("validation_bpb"));
            }
            stdout.printf(Locale.ROOT, "wrote %s (%s, %s)%n", out, layout, dt);
        }
    }

    /** Writes the fine-tuned model; returns the layout written. */
    private String write(WeightSource src, Trainer trainer, boolean gguf, GgmlType dt, boolean noMasks) {
        TrainedWeights tw = TrainedWeights.of(trainer.model(), src);
        CliProgress bar = new CliProgress("write");
        if (gguf) {
            String name = src.gguf().map(g -> g.getString("general.name", null)).orElse(null);
            if (name == null) {
                Path fn = in.toAbsolutePath().getFileName();
                name = fn == null ? "model" : fn.toString().replaceFirst("\\.(gguf|bin|safetensors)$", "");
            }
            Converter.ggufWriter(tw, dt, name).write(out, (stage, done, total) -> bar.update(done, total, stage));
            return "gguf";
        }
        if (src instanceof SparseSource ss && !noMasks) {
            Map<String, float[]> sparse = new LinkedHashMap<>();
            for (String n : src.tensorNames()) if (ss.sparse(n).isPresent()) sparse.put(n, tw.floats(n));
            boolean is24 = ss.format().equals(SparseSafetensors.SPARSE24);
            String structure = is24 ? "2:4" : sparsityStructure(in);
            SparseSafetensors.write(PrunedWeights.of(tw, sparse), out, is24 ? SparseSafetensors.Format.NM : SparseSafetensors.Format.BITMASK,
                    dt, structure, (stage, done, total) -> bar.update(done, total, stage));
            return is24 ? "nm" : "bitmask";
        }
        SparseSafetensors.write(PrunedWeights.of(tw, Map.of()), out, SparseSafetensors.Format.DENSE, dt, "unstructured",
                (stage, done, total) -> bar.update(done, total, stage));
        return "dense";
    }

    static void deleteTree(Path p) {
        if (!Files.exists(p)) return;
        try (java.util.stream.Stream<Path> s = Files.walk(p)) {
            for (Path f : s.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(f);
        } catch (IOException e) {
            throw new LatheException(p, "cannot remove: " + e.getMessage(), e);
        }
    }

    /** A compressed-tensors sparse folder as {@link SparseSource}, anything else through {@link ModelLoader}. */
    static WeightSource open(Path path) {
        if (Files.isDirectory(path) && SparseSafetensors.isSparseFolder(path)) return SparseSource.open(path);
        return ModelLoader.open(path);
    }

    private static String sparsityStructure(Path folder) {
        try {
            String s = new ObjectMapper().readTree(folder.resolve("config.json").toFile()).path("quantization_config")
                    .path("sparsity_config").path("sparsity_structure").asText("unstructured");
            return s.isEmpty() ? "unstructured" : s;
        } catch (IOException e) {
            throw new LatheException(folder.resolve("config.json"), "cannot read: " + e.getMessage(), e);
        }
    }

    static GgmlType defaultType(WeightSource src) {
        for (String n : src.tensorNames()) {
            if (!n.startsWith("blk.") || !n.endsWith(".weight") || src.tensor(n).dims() != 2) continue;
            GgmlType t = src.tensor(n).type();
            return t == GgmlType.F32 || t == GgmlType.F16 || t == GgmlType.BF16 ? t : GgmlType.F16;
        }
        return GgmlType.F16;
    }

    static GgmlType parseType(String s, boolean gguf) {
        GgmlType t = switch (s.toLowerCase(Locale.ROOT)) {
            case "f32" -> GgmlType.F32;
            case "f16" -> GgmlType.F16;
            case "bf16" -> GgmlType.BF16;
            case "q8_0" -> GgmlType.Q8_0;
            case "q4_0" -> GgmlType.Q4_0;
            default -> throw new LatheException("--dtype must be f32, f16, bf16, q8_0 or q4_0, not '" + s + "'");
        };
        if (!gguf && !Converter.HF_TYPES.contains(t)) throw new LatheException("--dtype " + s + " is only for GGUF output; a Hugging Face folder takes f32, f16 or bf16");
        return t;
    }
}
