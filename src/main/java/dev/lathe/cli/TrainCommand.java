package dev.lathe.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lathe.LatheException;
import dev.lathe.io.AtomicOutput;
import dev.lathe.io.Converter;
import dev.lathe.io.gguf.GgufValue;
import dev.lathe.io.gguf.GgufWriter;
import dev.lathe.io.hf.HfFolderWriter;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;
import dev.lathe.train.Checkpoint;
import dev.lathe.train.CrossEntropyLoss;
import dev.lathe.train.TextCorpus;
import dev.lathe.train.TextEncoder;
import dev.lathe.train.TokenData;
import dev.lathe.train.TrainConfig;
import dev.lathe.train.TrainListener;
import dev.lathe.train.TrainModel;
import dev.lathe.train.Trainer;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Callable;

@Command(name = "train", mixinStandardHelpOptions = true,
        description = {"Train a LLaMA-architecture model from scratch on UTF-8 text with a trained SPM tokenizer.",
                "OUT gets checkpoint (atomic, resumable bit-identically with --resume), curve.csv and curve.png",
                "(train loss, validation loss and bits per byte), and at the end NAME.gguf and hf/ (config.json,",
                "model.safetensors, tokenizer.json)."})
final class TrainCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--config", required = true, description = "training config JSON (model shape and hyper-parameters)")
    Path config;

    @Option(names = "--data", arity = "1..*", description = "text files or folders (walked recursively)")
    List<Path> data;

    @Option(names = "--tokenizer", description = "tokenizer folder (tokenizer.json) as written by train-tokenizer")
    Path tokenizerDir;

    @Option(names = "--out", required = true, description = "output folder")
    Path out;

    @Option(names = "--resume", description = "continue from OUT/checkpoint")
    boolean resume;

    @Option(names = "--steps", description = "total optimizer steps (overrides the config)")
    Long steps;

    @Option(names = "--until", description = "stop after this step (a checkpoint is written; --resume continues)")
    Long until;

    @Option(names = "--max-seconds", description = "stop (with a checkpoint) after this many seconds of training")
    Double maxSeconds;

    @Option(names = "--export-only", description = "write NAME.gguf and hf/ from OUT/checkpoint and exit")
    boolean exportOnly;

    @Option(names = "--dtype", defaultValue = "F32", description = "type of the exported weights: F32 or F16 (default ${DEFAULT-VALUE})")
    String dtype;

    @Option(names = "--json", description = "print one JSON object at the end; progress lines only on stderr")
    boolean json;

    static final String CHECKPOINT = "checkpoint";
    static final String CURVE_CSV = "curve.csv";
    static final String CURVE_PNG = "curve.png";
    static final String TOKEN_CACHE = "tokens.cache";

    /** The parsed config file. */
    record Config(String name, ModelConfig model, long initSeed, TrainConfig.Builder train, double validationFraction) {}

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        GgmlType type = switch (dtype.toUpperCase(Locale.ROOT)) {
            case "F32" -> GgmlType.F32;
            case "F16" -> GgmlType.F16;
            default -> throw new LatheException("--dtype " + dtype + " is not F32 or F16");
        };
        Path ckpt = out.resolve(CHECKPOINT);
        if (tokenizerDir == null) throw new LatheException("--tokenizer is required");
        Tokenizer tok = Tokenizers.fromHfFolder(tokenizerDir);
        if (!tok.vocabulary().isSpm()) throw new LatheException(tokenizerDir, "not an SPM tokenizer (train one with train-tokenizer)");
        Config cfg = readConfig(config, tok.vocabSize());
        if (exportOnly) {
            if (!Files.isRegularFile(ckpt)) throw new LatheException(ckpt, "no checkpoint to export");
            Checkpoint.State s = Checkpoint.load(ckpt);
            checkSameShape(ckpt, s.config(), cfg.model());
            TrainModel m = TrainModel.init(s.config(), 0, false);
            for (TrainModel.Param p : m.params()) {
                float[] v = s.tensor(ckpt, "param/" + p.name());
                if (v.length != p.data().length) throw new LatheException(ckpt, "tensor '" + p.name() + "' has " + v.length + " values, expected " + p.data().length);
                System.arraycopy(v, 0, p.data(), 0, v.length);
            }
            Path gguf = export(m, tok, cfg.name(), out, type);
            stdout.println("exported step " + s.step() + " to " + gguf + " and " + out.resolve("hf"));
            return 0;
        }
        if (data == null || data.isEmpty()) throw new LatheException("--data is required");
        if (!resume && Files.exists(ckpt)) {
            throw new LatheException(ckpt, "a checkpoint already exists: continue with --resume or choose another --out");
        }
        if (resume && !Files.isRegularFile(ckpt)) throw new LatheException(ckpt, "no checkpoint to resume from");
        TrainConfig.Builder tb = cfg.train().checkpointPath(ckpt);
        if (steps != null) {
            if (steps < 1) throw new LatheException("--steps must be at least 1");
            tb.steps(steps);
        }
        TrainConfig tc = tb.build();
        TextCorpus corpus = TextCorpus.of(data, false);

        // data: per file, the last validationFraction of its text (cut at a line break) is validation
        TokenData td = tokenData(corpus, tok, cfg.validationFraction(), out.resolve(TOKEN_CACHE));
        if (td.train().length < tc.seqLen() + 1) {
            throw new LatheException(corpus.files().get(0), "the corpus is too small: " + td.train().length
                    + " training tokens, one sequence needs " + (tc.seqLen() + 1));
        }
        int[] val = td.validation().length >= 2 ? td.validation() : null;
        try {
            Files.createDirectories(out);
        } catch (IOException e) {
            throw new LatheException(out, "cannot create folder: " + e.getMessage(), e);
        }
        CrossEntropyLoss loss = new CrossEntropyLoss();
        Trainer trainer;
        List<double[]> curve = new ArrayList<>();
        if (resume) {
            Checkpoint.State peek = Checkpoint.load(ckpt);
            checkSameShape(ckpt, peek.config(), cfg.model());
            trainer = Trainer.resume(ckpt, tc, loss, td.train(), val, td.validationBytes());
            curve.addAll(readCurve(out.resolve(CURVE_CSV), trainer.step()));
        } else {
            trainer = new Trainer(TrainModel.init(cfg.model(), cfg.initSeed(), true), tc, loss, td.train(), val, td.validationBytes());
        }
        long target = until == null ? tc.steps() : Math.min(until, tc.steps());
        long startStep = trainer.step();
        long tokensPerStep = (long) tc.batchSize() * tc.seqLen() * tc.gradAccumSteps();
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("parameters", trainer.model().parameterCount());
        summary.put("train_tokens", td.train().length);
        summary.put("validation_tokens", td.validation().length);
        summary.put("start_step", startStep);
        if (!json) {
            stdout.printf(Locale.ROOT, "model %s: %,d parameters; %,d training tokens, %,d validation tokens; %d tokens/step; steps %d..%d of %d%n",
                    cfg.name(), trainer.model().parameterCount(), td.train().length, td.validation().length, tokensPerStep,
                    startStep, target, tc.steps());
            stdout.flush();
        }
        long t0 = System.nanoTime();
        long cpu0 = cpuNanos();
        double[] lastVal = {Double.NaN, Double.NaN};
        double[] lastLoss = {Double.NaN};
        try (CliProgress bar = new CliProgress("train")) {
            TrainListener listener = new TrainListener() {
                @Override
                public void onStep(StepInfo i) {
                    lastLoss[0] = i.loss();
                    curve.add(new double[] {i.step(), i.loss(), Double.NaN, Double.NaN});
                    double secs = (System.nanoTime() - t0) / 1e9;
                    double tps = (i.step() - startStep) * tokensPerStep / Math.max(secs, 1e-9);
                    double eta = (tc.steps() - i.step()) * tokensPerStep / Math.max(tps, 1e-9);
                    double cpu = (cpuNanos() - cpu0) / 1e9;
                    bar.update(i.step(), tc.steps(), String.format(Locale.ROOT, "loss %.4f  lr %.2e  %.0f tok/s (%.0f per CPU-s)  ETA(all) %s%s",
                            i.loss(), i.lr(), tps, (i.step() - startStep) * tokensPerStep / Math.max(cpu, 1e-9), CliProgress.fmt(eta),
                            Double.isNaN(lastVal[0]) ? "" : String.format(Locale.ROOT, "  val %.4f bpb %.4f", lastVal[0], lastVal[1])));
                }

                @Override
                public void onValidation(ValidationInfo v) {
                    lastVal[0] = v.loss();
                    lastVal[1] = v.bitsPerByte();
                    double[] row = curve.get(curve.size() - 1);
                    if (row[0] == v.step()) {
                        row[2] = v.loss();
                        row[3] = v.bitsPerByte();
                    }
                    System.err.printf(Locale.ROOT, "step %d: validation loss %.4f, bits per byte %.4f%n", v.step(), v.loss(), v.bitsPerByte());
                }

                @Override
                public void onCheckpoint(long step, Path file) {
                    writeCurve(out, curve);
                }
            };
            while (trainer.step() < target) {
                trainer.runUntil(trainer.step() + 1, listener);
                if (maxSeconds != null && (System.nanoTime() - t0) / 1e9 >= maxSeconds) break;
            }
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        double cpuSecs = (cpuNanos() - cpu0) / 1e9;
        long done = trainer.step() - startStep;
        if (done > 0) {
            trainer.saveCheckpoint(ckpt);
            writeCurve(out, curve);
        }
        summary.put("step", trainer.step());
        summary.put("steps", tc.steps());
        summary.put("seconds", secs);
        summary.put("tokens_per_second", done * tokensPerStep / Math.max(secs, 1e-9));
        summary.put("cpu_seconds", cpuSecs);
        summary.put("tokens_per_cpu_second", done * tokensPerStep / Math.max(cpuSecs, 1e-9));
        summary.put("train_loss", lastLoss[0]);
        if (trainer.step() >= tc.steps()) {
            if (val != null) {
                TrainListener.ValidationInfo v = trainer.validate();
                summary.put("validation_loss", v.loss());
                summary.put("validation_bpb", v.bitsPerByte());
                if (!curve.isEmpty() && curve.get(curve.size() - 1)[0] == v.step()) {
                    curve.get(curve.size() - 1)[2] = v.loss();
                    curve.get(curve.size() - 1)[3] = v.bitsPerByte();
                }
                writeCurve(out, curve);
            }
            Path gguf = export(trainer.model(), tok, cfg.name(), out, type);
            summary.put("gguf", gguf.toString());
            summary.put("hf", out.resolve("hf").toString());
        }
        summary.put("checkpoint", ckpt.toString());
        if (json) {
            stdout.println(Json.of(summary));
        } else {
            stdout.printf(Locale.ROOT, "trained steps %d..%d of %d in %.1f s (%.0f tokens/s; %.1f CPU-s, %.0f tokens per CPU-s), last train loss %.4f%n",
                    startStep, trainer.step(), tc.steps(), secs, (double) summary.get("tokens_per_second"), cpuSecs,
                    (double) summary.get("tokens_per_cpu_second"), lastLoss[0]);
            if (summary.containsKey("validation_bpb")) {
                stdout.printf(Locale.ROOT, "validation loss %.4f, bits per byte %.4f%n", (double) summary.get("validation_loss"),
                        (double) summary.get("validation_bpb"));
            }
            if (summary.containsKey("gguf")) stdout.println("wrote " + summary.get("gguf") + " and " + summary.get("hf"));
            else stdout.println("checkpoint " + ckpt + " (continue with --resume)");
        }
        return 0;
    }

    /** CPU time of this process (all threads), or wall time where the JVM cannot tell. */
    static long cpuNanos() {
        if (java.lang.management.ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            long t = os.getProcessCpuTime();
            if (t >= 0) return t;
        }
        return System.nanoTime();
    }

    // ------------------------------------------------------------------------------------------ config

    private static final Set<String> MODEL_KEYS = Set.of("name", "dim", "layers", "heads", "kv_heads", "ffn", "context",
            "norm_eps", "rope_theta", "tied_embeddings", "init_seed");
    private static final Set<String> TRAIN_KEYS = Set.of("batch", "seq_len", "grad_accum", "lr", "min_lr", "warmup", "steps",
            "weight_decay", "clip", "seed", "eval_every", "eval_max_sequences", "checkpoint_every", "validation_fraction",
            "beta1", "beta2", "activation_checkpointing");

    /** Reads and checks a config file; {@code vocab} is the tokenizer's size. */
    static Config readConfig(Path file, int vocab) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new LatheException(file, "cannot read config: " + Main.oneLine(e.getMessage()), e);
        }
        if (root == null || !root.isObject()) throw new LatheException(file, "config is not a JSON object");
        JsonNode m = root.path("model"), t = root.path("training");
        if (!m.isObject()) throw new LatheException(file, "config has no \"model\" object");
        if (!t.isObject()) throw new LatheException(file, "config has no \"training\" object");
        checkKeys(file, "model", m, MODEL_KEYS);
        checkKeys(file, "training", t, TRAIN_KEYS);
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!k.equals("model") && !k.equals("training") && !k.equals("comment")) throw new LatheException(file, "unknown config key '" + k + "'");
        }
        int dim = intOf(file, m, "dim", null), layers = intOf(file, m, "layers", null), heads = intOf(file, m, "heads", null);
        int kv = intOf(file, m, "kv_heads", heads), ffn = intOf(file, m, "ffn", null), ctx = intOf(file, m, "context", null);
        if (heads <= 0 || dim <= 0) throw new LatheException(file, "impossible model config: dim " + dim + ", heads " + heads);
        if (dim % heads != 0) throw new LatheException(file, "impossible model config: " + heads + " heads do not divide width " + dim);
        if (kv <= 0 || heads % kv != 0) throw new LatheException(file, "impossible model config: KV heads " + kv + " do not divide heads " + heads);
        ModelConfig mc = new ModelConfig("llama", dim, layers, heads, kv, dim / heads, ffn, vocab,
                (float) dblOf(file, m, "norm_eps", 1e-5), (float) dblOf(file, m, "rope_theta", 10000), RopeStyle.HALF, null,
                ctx, m.path("tied_embeddings").asBoolean(false), false).validate(file);
        TrainConfig.Builder b = TrainConfig.builder()
                .batchSize(intOf(file, t, "batch", 8)).seqLen(intOf(file, t, "seq_len", ctx))
                .gradAccumSteps(intOf(file, t, "grad_accum", 1)).lr(dblOf(file, t, "lr", 1e-3)).minLr(dblOf(file, t, "min_lr", 1e-4))
                .warmupSteps(longOf(file, t, "warmup", 100)).steps(longOf(file, t, "steps", 1000))
                .weightDecay(dblOf(file, t, "weight_decay", 0.1)).clipNorm(dblOf(file, t, "clip", 1.0)).seed(longOf(file, t, "seed", 1))
                .evalEvery(longOf(file, t, "eval_every", 0)).evalMaxSequences(intOf(file, t, "eval_max_sequences", 0))
                .checkpointEvery(longOf(file, t, "checkpoint_every", 0))
                .betas(dblOf(file, t, "beta1", 0.9), dblOf(file, t, "beta2", 0.95))
                .activationCheckpointing(t.path("activation_checkpointing").asBoolean(false));
        int seqLen = intOf(file, t, "seq_len", ctx);
        if (seqLen < 2 || seqLen > ctx) throw new LatheException(file, "training seq_len " + seqLen + " must be in 2.." + ctx + " (the context)");
        double vf = dblOf(file, t, "validation_fraction", 0.01);
        if (!(vf >= 0 && vf < 0.5)) throw new LatheException(file, "validation_fraction " + vf + " is not in [0, 0.5)");
        if (intOf(file, t, "batch", 8) < 1 || intOf(file, t, "grad_accum", 1) < 1 || longOf(file, t, "steps", 1000) < 1
                || longOf(file, t, "warmup", 100) < 0 || longOf(file, t, "eval_every", 0) < 0 || longOf(file, t, "checkpoint_every", 0) < 0
                || !(dblOf(file, t, "lr", 1e-3) > 0)) {
            throw new LatheException(file, "impossible training settings (batch, grad_accum, steps ≥ 1; lr > 0; intervals ≥ 0)");
        }
        String name = m.path("name").asText("lathe-ref");
        if (!name.matches("[A-Za-z0-9._-]+")) throw new LatheException(file, "model name '" + name + "' must be letters, digits, . _ -");
        return new Config(name, mc, longOf(file, m, "init_seed", 1), b, vf);
    }

    private static void checkKeys(Path file, String section, JsonNode n, Set<String> allowed) {
        for (Iterator<String> it = n.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!allowed.contains(k)) throw new LatheException(file, "unknown key '" + k + "' in \"" + section + "\" (known: " + allowed + ")");
        }
    }

    private static JsonNode num(Path file, JsonNode n, String key) {
        JsonNode v = n.get(key);
        if (v == null) return null;
        if (!v.isNumber()) throw new LatheException(file, "config value '" + key + "' is not a number: " + v);
        return v;
    }

    private static int intOf(Path file, JsonNode n, String key, Integer def) {
        JsonNode v = num(file, n, key);
        if (v == null) {
            if (def == null) throw new LatheException(file, "config lacks '" + key + "'");
            return def;
        }
        if (!v.canConvertToInt() || v.isFloatingPointNumber()) throw new LatheException(file, "config value '" + key + "' is not an integer: " + v);
        return v.intValue();
    }

    private static long longOf(Path file, JsonNode n, String key, long def) {
        JsonNode v = num(file, n, key);
        if (v == null) return def;
        if (!v.canConvertToLong() || v.isFloatingPointNumber()) throw new LatheException(file, "config value '" + key + "' is not an integer: " + v);
        return v.longValue();
    }

    private static double dblOf(Path file, JsonNode n, String key, double def) {
        JsonNode v = num(file, n, key);
        double d = v == null ? def : v.doubleValue();
        if (!Double.isFinite(d)) throw new LatheException(file, "config value '" + key + "' is not finite");
        return d;
    }

    private static void checkSameShape(Path ckpt, ModelConfig inFile, ModelConfig wanted) {
        if (inFile.dim() != wanted.dim() || inFile.nLayers() != wanted.nLayers() || inFile.nHeads() != wanted.nHeads()
                || inFile.nKvHeads() != wanted.nKvHeads() || inFile.ffnDim() != wanted.ffnDim() || inFile.vocabSize() != wanted.vocabSize()
                || inFile.tiedEmbeddings() != wanted.tiedEmbeddings()) {
            throw new LatheException(ckpt, "checkpoint model " + inFile + " does not match the config's " + wanted);
        }
    }

    // ------------------------------------------------------------------------------------------ data

    /** An encoder for training text: the SPM tokenizer without BOS; its id fingerprints the vocabulary. */
    static TextEncoder encoder(Tokenizer tok) {
        long h = 1125899906842597L;
        for (String s : tok.vocabulary().tokens()) h = 31 * h + s.hashCode();
        for (float f : tok.vocabulary().scores()) h = 31 * h + Float.floatToIntBits(f);
        String id = "spm:" + tok.vocabSize() + ":" + Long.toHexString(h);
        return new TextEncoder() {
            @Override
            public int[] encode(String text) {
                return tok.encode(text, false, false);
            }

            @Override
            public String id() {
                return id;
            }
        };
    }

    /**
     * Token streams: each file is one document {@code [BOS] text [EOS]}; its last {@code fraction} of text
     * (cut at a line break) goes to validation as a document of its own. Cached in {@code cache} (null: no cache).
     */
    static TokenData tokenData(TextCorpus corpus, Tokenizer tok, double fraction, Path cache) {
        TextEncoder enc = encoder(tok);
        StringBuilder fp = new StringBuilder("tail-split;enc=").append(enc.id()).append(";val=").append(fraction);
        for (Path f : corpus.files()) {
            try {
                fp.append(';').append(f.toAbsolutePath().normalize()).append(':').append(Files.size(f)).append(':')
                        .append(Files.getLastModifiedTime(f).toMillis());
            } catch (IOException e) {
                throw new LatheException(f, "cannot stat: " + e.getMessage(), e);
            }
        }
        String fingerprint = fp.toString();
        if (cache != null && Files.isRegularFile(cache)) {
            TokenData d = TokenData.readCache(cache, fingerprint);
            if (d != null) return d;
        }
        IntList tr = new IntList(), va = new IntList();
        long[] bytes = new long[2];
        int[] docs = new int[2];
        corpus.forEach(d -> {
            String text = d.text();
            if (text.isBlank()) return;
            int cut = text.length();
            if (fraction > 0) {
                int want = (int) Math.round(text.length() * (1 - fraction));
                int nl = text.indexOf('\n', want);
                cut = nl < 0 ? want : nl + 1;
                if (Character.isLowSurrogate(text.charAt(Math.min(cut, text.length() - 1))) && cut > 0 && cut < text.length()) cut--;
            }
            String a = text.substring(0, cut), b = text.substring(cut);
            if (!a.isEmpty()) {
                tr.add(tok.bosId());
                tr.addAll(enc.encode(a));
                tr.add(tok.eosId());
                bytes[0] += a.getBytes(StandardCharsets.UTF_8).length;
                docs[0]++;
            }
            if (!b.isBlank()) {
                va.add(tok.bosId());
                va.addAll(enc.encode(b));
                va.add(tok.eosId());
                bytes[1] += b.getBytes(StandardCharsets.UTF_8).length;
                docs[1]++;
            }
        });
        if (docs[0] == 0) throw new LatheException(corpus.files().get(0), "the corpus holds no text");
        TokenData td = new TokenData(tr.toArray(), va.toArray(), bytes[0], bytes[1], docs[0], docs[1]);
        if (cache != null) td.writeCache(cache, fingerprint);
        return td;
    }

    static final class IntList {
        private int[] a = new int[1024];
        private int n;

        void add(int v) {
            if (n == a.length) a = java.util.Arrays.copyOf(a, n * 2);
            a[n++] = v;
        }

        void addAll(int[] v) {
            while (n + v.length > a.length) a = java.util.Arrays.copyOf(a, a.length * 2);
            System.arraycopy(v, 0, a, n, v.length);
            n += v.length;
        }

        int[] toArray() {
            return java.util.Arrays.copyOf(a, n);
        }
    }

    // ------------------------------------------------------------------------------------------ curve

    static List<double[]> readCurve(Path csv, long upToStep) {
        List<double[]> rows = new ArrayList<>();
        if (!Files.isRegularFile(csv)) return rows;
        List<String> lines;
        try {
            lines = Files.readAllLines(csv);
        } catch (IOException e) {
            throw new LatheException(csv, "cannot read: " + e.getMessage(), e);
        }
        for (int i = 1; i < lines.size(); i++) {
            String[] f = lines.get(i).split(",", -1);
            if (f.length != 4) throw new LatheException(csv, "line " + (i + 1) + " does not have 4 fields");
            try {
                double[] r = new double[4];
                for (int k = 0; k < 4; k++) r[k] = f[k].isEmpty() ? Double.NaN : Double.parseDouble(f[k]);
                if (r[0] <= upToStep) rows.add(r);
            } catch (NumberFormatException e) {
                throw new LatheException(csv, "line " + (i + 1) + " is not numeric: " + lines.get(i));
            }
        }
        return rows;
    }

    /** Writes curve.csv (step, train_loss, val_loss, val_bpb) and curve.png, each atomically. */
    static void writeCurve(Path out, List<double[]> rows) {
        StringBuilder sb = new StringBuilder("step,train_loss,val_loss,val_bpb\n");
        XYSeries train = new XYSeries("train loss"), vl = new XYSeries("validation loss"), bpb = new XYSeries("validation bits/byte");
        for (double[] r : rows) {
            sb.append((long) r[0]).append(',').append(fmt(r[1])).append(',').append(fmt(r[2])).append(',').append(fmt(r[3])).append('\n');
            train.add(r[0], r[1]);
            if (!Double.isNaN(r[2])) vl.add(r[0], r[2]);
            if (!Double.isNaN(r[3])) bpb.add(r[0], r[3]);
        }
        byte[] csv = sb.toString().getBytes(StandardCharsets.UTF_8);
        AtomicOutput.write(out.resolve(CURVE_CSV), o -> o.bytes(csv));
        System.setProperty("java.awt.headless", "true");
        XYSeriesCollection ds = new XYSeriesCollection();
        ds.addSeries(train);
        ds.addSeries(vl);
        ds.addSeries(bpb);
        JFreeChart chart = ChartFactory.createXYLineChart("Training curve", "step", "loss (nats/token), bits/byte", ds,
                PlotOrientation.VERTICAL, true, false, false);
        org.jfree.chart.plot.XYPlot plot = chart.getXYPlot();
        plot.setBackgroundPaint(java.awt.Color.WHITE);
        plot.setDomainGridlinePaint(java.awt.Color.LIGHT_GRAY);
        plot.setRangeGridlinePaint(java.awt.Color.LIGHT_GRAY);
        org.jfree.chart.renderer.xy.XYLineAndShapeRenderer renderer = new org.jfree.chart.renderer.xy.XYLineAndShapeRenderer();
        renderer.setSeriesShapesVisible(0, false);
        renderer.setSeriesShapesVisible(1, true);
        renderer.setSeriesShapesVisible(2, true);
        plot.setRenderer(renderer);
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        try {
            ChartUtils.writeChartAsPNG(png, chart, 900, 500);
        } catch (IOException e) {
            throw new LatheException(out.resolve(CURVE_PNG), "cannot render chart: " + e.getMessage(), e);
        }
        byte[] pb = png.toByteArray();
        AtomicOutput.write(out.resolve(CURVE_PNG), o -> o.bytes(pb));
    }

    private static String fmt(double v) {
        return Double.isNaN(v) ? "" : Double.toString(v);
    }

    // ------------------------------------------------------------------------------------------ export

    /** Writes OUT/NAME.gguf (GGUF arch llama, interleaved Q/K rows, tokenizer metadata) and OUT/hf/. */
    static Path export(TrainModel m, Tokenizer tok, String name, Path out, GgmlType type) {
        WeightSource src = weights(m, out.resolve(name + ".gguf"));
        GgufWriter w = Converter.ggufWriter(src, type, name);
        for (Map.Entry<String, GgufValue> e : Tokenizers.toGgufMetadata(tok).entrySet()) w.set(e.getKey(), e.getValue());
        Path gguf = out.resolve(name + ".gguf");
        w.write(gguf);
        Path hf = out.resolve("hf");
        Converter.toHf(src, hf, type, HfFolderWriter.DEFAULT_MAX_SHARD_BYTES, dev.lathe.io.Progress.NONE);
        HfFolderWriter.writeConfig(hf, m.config().withRopeStyle(RopeStyle.HALF), type, tok.bosId(), tok.eosId());
        Tokenizers.writeHf(tok, hf);
        return gguf;
    }

    /** The trained parameters as an in-memory weight source (HF Q/K layout). */
    static WeightSource weights(TrainModel m, Path path) {
        Map<String, Tensor> tensors = m.toTensors();
        ModelConfig c = m.config().withRopeStyle(RopeStyle.HALF);
        return new WeightSource() {
            @Override
            public Path path() {
                return path;
            }

            @Override
            public ModelConfig config() {
                return c;
            }

            @Override
            public Set<String> tensorNames() {
                return tensors.keySet();
            }

            @Override
            public Tensor tensor(String n) {
                Tensor t = tensors.get(n);
                if (t == null) throw new LatheException(path, "no tensor '" + n + "'");
                return t;
            }

            @Override
            public Optional<dev.lathe.io.gguf.GgufFile> gguf() {
                return Optional.empty();
            }

            @Override
            public void close() {}
        };
    }
}
