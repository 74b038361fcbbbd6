package dev.lathe.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lathe.LatheException;
import dev.lathe.compress.MixAllocator;
import dev.lathe.compress.QuantPlan;
import dev.lathe.compress.WeightFormat;
import dev.lathe.model.Parallel;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * A mix chosen by measurement for a bits-per-weight budget: every quantizable tensor is measured alone in each
 * candidate block type ({@link Sensitivity}: the KL divergence it causes against the unchanged model on
 * calibration text), then {@link MixAllocator} picks the types with the smallest summed divergence whose size
 * fits the budget. Where llama.cpp's Q4_K_M gives every model the same rules (Q6_K head, more bits for some
 * attn_v and ffn_down), this spends the bits where this model loses most.
 * <p>
 * Measuring every candidate costs one forward pass over the calibration chunks each (tensors x types); with
 * {@link Measure#ANCHORS} only two types per tensor are measured (Q4_K and Q8_0, or what they fall back to)
 * and the others predicted from the weights alone: KLD(type) = floor + k * E(type), E the summed squared
 * rounding error of the tensor in that type, k and floor solved from the two measured anchors (the floor is the
 * engine's activation quantization, which no weight type removes). On lathe-ref this predicts the measured
 * KLD of the other four types within 14 % on average (mean |log ratio| 0.13), at a third of the cost.
 * <p>
 * The measurements can be kept in a file (the {@code sensitivity --json} layout); a later run on the same
 * model and text reads them and measures only what is missing, so an interrupted run resumes and other
 * budgets cost nothing more.
 */
public final class AutoMix {
    private AutoMix() {}

    /** Default candidate types. */
    public static final List<GgmlType> DEFAULT_TYPES = List.of(GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q8_0);

    /**
     * @param plan     the chosen formats
     * @param choice   sizes and predicted (summed) divergence of the choice
     * @param measured candidates measured in this run
     * @param reused   candidates read from the cache file
     */
    public record Result(QuantPlan plan, MixAllocator.Choice choice, int measured, int reused, int predicted) {}

    /** Which candidates are measured: all of them, or two anchors per tensor with the rest predicted. */
    public enum Measure { ALL, ANCHORS }

    /** The anchor types of {@link Measure#ANCHORS}: a mid-size type and a near-lossless one. */
    static final List<GgmlType> ANCHOR_TYPES = List.of(GgmlType.Q4_K, GgmlType.Q8_0);

    public static Result plan(WeightSource src, List<GgmlType> types, double bpw, int[] tokens, Perplexity.Options o, Path cache,
                              Parallel pool, Sensitivity.Listener listener) {
        return plan(src, types, bpw, tokens, o, cache, Measure.ALL, pool, listener);
    }

    /**
     * @param bpw     budget in bits per quantized weight (as {@code quantize} reports it: stored bits of the
     *                quantized tensors over their weight count)
     * @param tokens  calibration text, tokenized, cut into chunks by {@code o}
     * @param cache   file to read and extend with the measurements, or null
     */
    public static Result plan(WeightSource src, List<GgmlType> types, double bpw, int[] tokens, Perplexity.Options o, Path cache,
                              Measure measure, Parallel pool, Sensitivity.Listener listener) {
        return plan(src, types, bpw, tokens, o, cache, measure, null, pool, listener);
    }

    /**
     * As above, each candidate's price multiplied by {@code costScale} (tensor, then format; absent = 1): the
     * divergences are measured with round-to-nearest, and a mix that GPTQ will quantize is priced with GPTQ's
     * error ratio per tensor and format ({@link dev.lathe.compress.GptqGain}).
     */
    public static Result plan(WeightSource src, List<GgmlType> types, double bpw, int[] tokens, Perplexity.Options o, Path cache,
                              Measure measure, Map<String, ? extends Map<? extends WeightFormat, Double>> costScale,
                              Parallel pool, Sensitivity.Listener listener) {
        if (!(bpw > 0) || bpw > 32) throw new LatheException("--bpw must be in (0, 32], got " + bpw);
        Map<String, List<WeightFormat.Gguf>> cands = MixAllocator.candidates(src, types);
        long weights = 0, smallest = 0;
        for (Map.Entry<String, List<WeightFormat.Gguf>> e : cands.entrySet()) {
            weights += src.tensor(e.getKey()).numElements();
            smallest += e.getValue().stream().mapToLong(f -> MixAllocator.bits(src.tensor(e.getKey()), f)).min().orElseThrow();
        }
        if (smallest > bpw * weights) {
            throw new LatheException(String.format(Locale.ROOT, "--bpw %.3f is below the smallest mix of the candidate types (%.3f bits per weight)", bpw, (double) smallest / weights));
        }
        String textId = textId(tokens, o);
        Map<String, Sensitivity.Entry> known = new LinkedHashMap<>();
        if (cache != null && Files.exists(cache)) {
            for (Sensitivity.Entry e : read(cache, textId)) known.put(e.tensor() + "/" + e.format(), e);
        }
        int reused = 0;
        List<Sensitivity.Candidate> todo = new ArrayList<>();
        Map<String, List<WeightFormat.Gguf>> anchors = new LinkedHashMap<>();
        for (Map.Entry<String, List<WeightFormat.Gguf>> e : cands.entrySet()) {
            List<WeightFormat.Gguf> an = anchorsOf(src, e.getKey(), e.getValue());
            if (measure == Measure.ANCHORS && an.size() == 2) anchors.put(e.getKey(), an);
            for (WeightFormat.Gguf f : e.getValue()) {
                Sensitivity.Entry k = known.get(e.getKey() + "/" + f);
                if (k == null) {
                    if (anchors.containsKey(e.getKey()) && !an.contains(f)) continue; // predicted below
                    todo.add(new Sensitivity.Candidate(e.getKey(), f));
                } else {
                    if (k.params() != src.tensor(e.getKey()).numElements()) {
                        throw new LatheException(cache, "tensor " + e.getKey() + " has " + k.params() + " weights there but "
                                + src.tensor(e.getKey()).numElements() + " in " + src.path() + " (measured on another model?)");
                    }
                    reused++;
                }
            }
        }
        if (!todo.isEmpty()) {
            Sensitivity.measure(src, todo, tokens, o, pool, (done, total, last, eta) -> {
                known.put(last.tensor() + "/" + last.format(), last);
                if (cache != null) write(cache, src, textId, o, known.values());
                listener.done(done, total, last, eta);
            });
        }
        Map<String, List<MixAllocator.Option>> options = new LinkedHashMap<>();
        int predicted = 0;
        for (Map.Entry<String, List<WeightFormat.Gguf>> e : cands.entrySet()) {
            List<MixAllocator.Option> l = new ArrayList<>();
            Map<WeightFormat.Gguf, Double> err = null;
            for (WeightFormat.Gguf f : e.getValue()) {
                Sensitivity.Entry k = known.get(e.getKey() + "/" + f);
                double cost;
                if (k != null) {
                    cost = k.kldMean();
                } else {
                    if (err == null) err = roundingErrors(src, e.getKey(), e.getValue(), pool);
                    cost = predict(err, anchors.get(e.getKey()), known, e.getKey(), f);
                    predicted++;
                }
                if (costScale != null && costScale.get(e.getKey()) != null) {
                    Double sc = costScale.get(e.getKey()).get(f);
                    if (sc != null) cost *= sc;
                }
                l.add(new MixAllocator.Option(f, MixAllocator.bits(src.tensor(e.getKey()), f), cost));
            }
            options.put(e.getKey(), l);
        }
        long budget = (long) Math.floor(bpw * weights);
        MixAllocator.Choice choice = MixAllocator.allocate(options, budget);
        Map<String, WeightFormat> formats = new LinkedHashMap<>();
        Map<String, Integer> counts = new TreeMap<>();
        for (Map.Entry<String, MixAllocator.Option> e : choice.chosen().entrySet()) {
            formats.put(e.getKey(), e.getValue().format());
            counts.merge(e.getValue().format().toString(), 1, Integer::sum);
        }
        List<String> notes = new ArrayList<>();
        notes.add(String.format(Locale.ROOT, "measured mix for %.3f bpw: %.4f bpw used, predicted KLD %.6f (sum over tensors%s), types %s; "
                        + "%d candidates measured, %d reused, %d predicted", bpw, (double) choice.bits() / weights, choice.cost(),
                costScale == null ? "" : ", priced with GPTQ's error ratios", counts, todo.size(), reused, predicted));
        for (String n : List.of(dev.lathe.model.TensorNames.TOKEN_EMBD, dev.lathe.model.TensorNames.OUTPUT)) {
            if (formats.containsKey(n)) notes.add(n + ": " + formats.get(n));
        }
        QuantPlan plan = QuantPlan.of(src, String.format(Locale.ROOT, "auto-%.2f", bpw), formats, notes);
        return new Result(plan, choice, todo.size(), reused, predicted);
    }

    /** The two anchor formats of a tensor (what {@link #ANCHOR_TYPES} fall back to), when both are candidates and differ. */
    static List<WeightFormat.Gguf> anchorsOf(WeightSource src, String tensor, List<WeightFormat.Gguf> cands) {
        List<WeightFormat.Gguf> out = new ArrayList<>();
        long cols = src.tensor(tensor).cols();
        for (GgmlType t : ANCHOR_TYPES) {
            WeightFormat.Gguf f = new WeightFormat.Gguf(QuantPlan.fallback(tensor, t, cols, new ArrayList<>()));
            if (cands.contains(f) && !out.contains(f)) out.add(f);
        }
        return out;
    }

    /** Summed squared round-to-nearest error of the tensor in each format. */
    static Map<WeightFormat.Gguf, Double> roundingErrors(WeightSource src, String tensor, List<WeightFormat.Gguf> formats, Parallel pool) {
        var t = src.tensor(tensor);
        float[] w = dev.lathe.tensor.TensorOps.toFloats(t);
        Map<WeightFormat.Gguf, Double> out = new LinkedHashMap<>();
        for (WeightFormat.Gguf f : formats) {
            float[] d = dev.lathe.compress.Grid.of(f, tensor, (int) t.rows(), (int) t.cols(), null).roundToNearest(w, pool);
            double s = 0;
            for (int i = 0; i < w.length; i++) {
                double x = (double) w[i] - d[i];
                s += x * x;
            }
            out.put(f, s);
        }
        return out;
    }

    /** KLD(f) = floor + k * E(f), through the two measured anchors (lower one first in {@code an}: Q4_K, Q8_0). */
    static double predict(Map<WeightFormat.Gguf, Double> err, List<WeightFormat.Gguf> an, Map<String, Sensitivity.Entry> known, String tensor,
                          WeightFormat.Gguf f) {
        double ka = known.get(tensor + "/" + an.get(0)).kldMean(), kb = known.get(tensor + "/" + an.get(1)).kldMean();
        double ea = err.get(an.get(0)), eb = err.get(an.get(1)), e = err.get(f);
        if (!(Math.abs(ea - eb) > 0)) return ka;
        double k = Math.max(0, (ka - kb) / (ea - eb));
        double floor = kb - k * eb;
        return Math.max(0, floor + k * e);
    }

    /** Identifies the calibration text and chunking, so a cache measured on other text is refused. */
    static String textId(int[] tokens, Perplexity.Options o) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            int chunks = Perplexity.chunks(tokens.length, o);
            int n = chunks * o.nCtx();
            for (int i = 0; i < n; i++) {
                int v = tokens[i];
                md.update(new byte[] {(byte) v, (byte) (v >>> 8), (byte) (v >>> 16), (byte) (v >>> 24)});
            }
            return HexFormat.of().formatHex(md.digest()).substring(0, 16) + "-ctx" + o.nCtx() + "-chunks" + chunks + "-bos" + o.bos();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Entries of a cache file; refuses one measured on other text or chunking. */
    static List<Sensitivity.Entry> read(Path file, String textId) {
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new LatheException(file, "not a sensitivity file (invalid JSON: " + e.getMessage().lines().findFirst().orElse("") + ")");
        }
        if (root == null || !root.isObject() || !root.path("tensors").isArray()) throw new LatheException(file, "not a sensitivity file (no \"tensors\" array)");
        String id = root.path("text_id").asText("");
        if (!id.equals(textId)) {
            throw new LatheException(file, "measured on other calibration text or chunking (" + (id.isEmpty() ? "none recorded" : id) + ", now " + textId
                    + "); delete it or name another file");
        }
        List<Sensitivity.Entry> out = new ArrayList<>();
        for (JsonNode t : root.path("tensors")) {
            if (!t.path("tensor").isTextual() || !t.path("format").isTextual() || !t.path("kld_mean").isNumber() || !t.path("params").canConvertToLong()) {
                throw new LatheException(file, "bad entry " + t);
            }
            double kld = t.path("kld_mean").asDouble();
            if (!Double.isFinite(kld) || kld < 0) throw new LatheException(file, "bad kld_mean in " + t);
            out.add(new Sensitivity.Entry(t.path("tensor").asText(), t.path("format").asText(), t.path("params").asLong(), t.path("bpw").asDouble(),
                    kld, t.path("kld_p99").asDouble(), t.path("top1").asDouble(), t.path("ppl_ratio").asDouble()));
        }
        return out;
    }

    /** Writes the entries atomically (temp file, then rename). */
    static void write(Path file, WeightSource src, String textId, Perplexity.Options o, java.util.Collection<Sensitivity.Entry> entries) {
        ObjectNode root = JSON.createObjectNode();
        root.put("model", src.path() == null ? "" : src.path().toString());
        root.put("text_id", textId);
        root.put("ctx", o.nCtx());
        ArrayNode arr = root.putArray("tensors");
        for (Sensitivity.Entry e : entries) arr.add(JSON.valueToTree(e.toMap()));
        try {
            Path abs = file.toAbsolutePath();
            if (abs.getParent() != null) Files.createDirectories(abs.getParent());
            Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp");
            try {
                JSON.writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), root);
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } finally {
                Files.deleteIfExists(tmp);
            }
        } catch (IOException e) {
            throw new LatheException(file, "cannot write: " + e.getMessage());
        }
    }
}
