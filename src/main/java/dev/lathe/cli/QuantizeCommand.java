package dev.lathe.cli;

import dev.lathe.LatheException;
import dev.lathe.compress.CalibrationData;
import dev.lathe.compress.Gptq;
import dev.lathe.compress.GptqGain;
import dev.lathe.compress.MixAllocator;
import dev.lathe.compress.WeightFormat;
import dev.lathe.eval.AutoMix;
import dev.lathe.eval.Perplexity;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;
import dev.lathe.compress.QuantizeJob;
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

@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = {"Quantize a model's weights: round-to-nearest, importance-weighted (imatrix), GPTQ, AWQ.",
                "--type: a llama.cpp type or mix (Q4_K_M, Q3_K_M, Q5_K_M, Q2_K, Q4_0, Q8_0, ..., chosen per tensor as",
                "llama-quantize does; --pure for one type everywhere) written as GGUF, or intB[-gG][-asym] (int4-g128,",
                "int8 = per channel) written as a compressed-tensors safetensors folder.",
                "--type auto --bpw B: a mix measured on this model: each tensor is tried alone in each of --mix-types on",
                "the calibration text, then the types with the smallest summed KL divergence within B bits per weight",
                "are chosen (keep the measurements with --sensitivity FILE to reuse them for other budgets)."})
final class QuantizeCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "model: GGUF file, Hugging Face folder or llama2.c .bin")
    Path model;

    @Option(names = {"-o", "--output"}, required = true, description = "output .gguf file (or folder for int formats)")
    Path out;

    @Option(names = "--method", defaultValue = "rtn", description = "rtn, imatrix, gptq, awq, awq+gptq (default ${DEFAULT-VALUE})")
    String method;

    @Option(names = "--type", required = true, description = "Q4_K_M, Q3_K_M, Q4_0, Q8_0, Q6_K, ..., int4-g128, int8")
    String type;

    @Option(names = "--pure", description = "no per-tensor mix: every weight gets the base type")
    boolean pure;

    @Option(names = "--calib", split = ",", description = "calibration text files or folders (comma separated)")
    List<Path> calib;

    @Option(names = "--samples", defaultValue = "128", description = "calibration samples (default ${DEFAULT-VALUE})")
    int samples;

    @Option(names = "--seq-len", defaultValue = "512", description = "tokens per calibration sample (default ${DEFAULT-VALUE})")
    int seqLen;

    @Option(names = "--seed", defaultValue = "1234", description = "seed for drawing calibration windows (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--imatrix", description = "llama.cpp imatrix.dat for --method imatrix (else computed from --calib)")
    Path imatrix;

    @Option(names = "--damp", defaultValue = "0.01", description = "GPTQ damping, fraction of the mean Hessian diagonal (default ${DEFAULT-VALUE})")
    double damp;

    @Option(names = "--block-size", defaultValue = "128", description = "GPTQ lazy-update block (default ${DEFAULT-VALUE})")
    int blockSize;

    @Option(names = "--act-order", description = "GPTQ: quantize columns by decreasing activation energy (int formats)")
    boolean actOrder;

    @Option(names = "--rtn-head", description = "GPTQ: round the output head to nearest (with importance) instead of running GPTQ on it")
    boolean rtnHead;

    @Option(names = "--awq-grid", defaultValue = "20", description = "AWQ: number of alpha values tried in [0,1) (default ${DEFAULT-VALUE})")
    int awqGrid;

    @Option(names = "--bpw", description = "with --type auto: bits per quantized weight to spend")
    Double bpw;

    @Option(names = "--mix-types", split = ",", description = "with --type auto: candidate types (default Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q8_0)")
    List<String> mixTypes;

    @Option(names = "--mix-chunks", defaultValue = "8", description = "with --type auto: calibration chunks each candidate is measured on (default ${DEFAULT-VALUE})")
    int mixChunks;

    @Option(names = "--mix-ctx", defaultValue = "256", description = "with --type auto: tokens per measuring chunk (default ${DEFAULT-VALUE})")
    int mixCtx;

    @Option(names = "--mix-measure", defaultValue = "all",
            description = "with --type auto: all (measure every candidate) or anchors (measure Q4_K and Q8_0 per tensor, predict the rest from rounding errors: a third of the cost; default ${DEFAULT-VALUE})")
    String mixMeasure;

    @Option(names = "--mix-price", defaultValue = "auto",
            description = "with --type auto: rtn (each candidate priced by its measured KLD) or gptq (that KLD times the ratio of GPTQ's to "
                    + "round-to-nearest's layer-output error for the tensor and type, measured on the calibration samples); "
                    + "auto = gptq for --method gptq and awq+gptq (default ${DEFAULT-VALUE})")
    String mixPrice;

    @Option(names = "--sensitivity", description = "with --type auto: JSON file to read measurements from and add new ones to")
    Path sensitivity;

    @Option(names = {"-t", "--threads"}, defaultValue = "0", description = "threads (default: all cores)")
    int threads;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Override
    public Integer call() {
        java.io.PrintWriter stdout = spec.commandLine().getOut();
        if (threads > 0) Parallel.setCommonThreads(threads);
        QuantizeJob.Method m = QuantizeJob.Method.parse(method);
        if (samples < 1) throw new LatheException("--samples must be >= 1");
        if (seqLen < 2) throw new LatheException("--seq-len must be >= 2");
        QuantizeJob.Options o0 = new QuantizeJob.Options(m, type, pure, calib, samples, seqLen, seed, imatrix,
                new Gptq.Options(damp, blockSize, actOrder), awqGrid, !rtnHead);
        QuantizeJob.Options o = o0;
        boolean auto = type.equalsIgnoreCase("auto");
        if (auto) {
            if (bpw == null) throw new LatheException("--type auto needs --bpw (bits per quantized weight)");
            if (pure) throw new LatheException("--pure does not apply to --type auto");
            if (calib == null || calib.isEmpty()) throw new LatheException("--type auto measures the mix on calibration text: give --calib FILE");
            if (mixChunks < 1) throw new LatheException("--mix-chunks must be >= 1");
            if (mixCtx < 8) throw new LatheException("--mix-ctx must be >= 8");
            List<GgmlType> types = new java.util.ArrayList<>();
            for (String t : mixTypes == null ? List.<String>of() : mixTypes) {
                WeightFormat f = WeightFormat.parse(t);
                if (!(f instanceof WeightFormat.Gguf g) || !g.type().isQuantized()) throw new LatheException("--mix-types takes GGUF block types (Q4_K, Q8_0, ...), not '" + t + "'");
                types.add(g.type());
            }
            List<GgmlType> cand = types.isEmpty() ? AutoMix.DEFAULT_TYPES : types;
            AutoMix.Measure measure = switch (mixMeasure.toLowerCase(Locale.ROOT)) {
                case "all" -> AutoMix.Measure.ALL;
                case "anchors" -> AutoMix.Measure.ANCHORS;
                default -> throw new LatheException("--mix-measure must be all or anchors, got '" + mixMeasure + "'");
            };
            boolean gptqPrice = switch (mixPrice.toLowerCase(Locale.ROOT)) {
                case "auto" -> m == QuantizeJob.Method.GPTQ || m == QuantizeJob.Method.AWQ_GPTQ;
                case "gptq" -> true;
                case "rtn" -> false;
                default -> throw new LatheException("--mix-price must be auto, rtn or gptq, got '" + mixPrice + "'");
            };
            final Gptq.Options gptqOpts = o0.gptq();
            o = o.withPlanner(src -> {
                Tokenizer tok = Tokenizers.load(src).orElseThrow(() -> new LatheException(src.path(), "the model has no tokenizer (needed for calibration text)"));
                int ctx = Math.min(mixCtx, src.config().contextLength());
                CalibrationData d = CalibrationData.randomWindows(calib, tok, mixChunks, ctx, seed);
                int[] ids = new int[d.size() * ctx];
                for (int i = 0; i < d.size(); i++) System.arraycopy(d.samples().get(i), 0, ids, i * ctx, ctx);
                Perplexity.Options po = new Perplexity.Options(ctx, tok.addBos() ? tok.bosId() : -1, -1, -1);
                Map<String, Map<WeightFormat, Double>> scale = null;
                if (gptqPrice) {
                    CalibrationData cd = CalibrationData.randomWindows(calib, tok, samples, Math.min(seqLen, src.config().contextLength()), seed);
                    scale = new LinkedHashMap<>();
                    try (CliProgress bar = new CliProgress("gptq gains")) {
                        var gains = GptqGain.measure(src, cd, MixAllocator.candidates(src, cand), gptqOpts, !rtnHead, Parallel.common(),
                                (d2, t, secs) -> bar.update(d2, t, ""));
                        for (var e : gains.entrySet()) {
                            Map<WeightFormat, Double> r = new LinkedHashMap<>();
                            for (var g : e.getValue().entrySet()) r.put(g.getKey(), g.getValue().ratio());
                            scale.put(e.getKey(), r);
                        }
                    }
                }
                try (CliProgress bar = new CliProgress("measure mix")) {
                    return AutoMix.plan(src, cand, bpw, ids, po, sensitivity, measure, scale, Parallel.common(),
                            (d2, t, last, eta) -> bar.update(d2, t, String.format(Locale.ROOT, "%s %s KLD %.5f", last.tensor(), last.format(), last.kldMean()))).plan();
                }
            });
        } else if (bpw != null || mixTypes != null || sensitivity != null || !mixPrice.equalsIgnoreCase("auto")) {
            throw new LatheException("--bpw, --mix-types, --mix-price and --sensitivity go with --type auto");
        }
        QuantizeJob.Summary s;
        try (CliProgress bar = new CliProgress("quantize " + method)) {
            s = QuantizeJob.run(model, out, o, (stage, done, total, eta) -> bar.update(done, total, stage));
        }
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("model", model.toString());
        j.put("output", s.output().toString());
        j.put("format", s.format());
        j.put("method", m.name().toLowerCase(Locale.ROOT).replace('_', '+'));
        j.put("type", s.plan());
        j.put("bytes", s.bytes());
        j.put("bpw", s.bitsPerWeight());
        j.put("quantized_weights", s.quantizedWeights());
        j.put("tensor_types", s.types());
        j.put("calibration_samples", s.calibrationSamples());
        j.put("calibration_tokens", s.calibrationTokens());
        j.put("notes", s.notes());
        j.put("seconds", s.seconds());
        if (json) {
            stdout.println(Json.of(j));
        } else {
            for (String n : s.notes()) stdout.println("note: " + n);
            stdout.printf(Locale.ROOT, "wrote %s (%s, %s, %,d bytes, %.3f bits per quantized weight, tensors %s) in %.1f s%n",
                    s.output(), s.format(), s.plan(), s.bytes(), s.bitsPerWeight(), s.types(), s.seconds());
        }
        return 0;
    }
}
