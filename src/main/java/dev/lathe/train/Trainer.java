package dev.lathe.train;

import dev.lathe.LatheException;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The training loop: micro-batches from a {@link SequenceSampler}, gradient accumulation, global-norm
 * clipping, AdamW with a warm-up + cosine schedule, periodic validation (loss and bits per byte) and
 * checkpoints, resume. A non-finite loss or gradient norm stops training with a {@link LatheException};
 * the last checkpoint written stays as it was.
 *
 * <p>Optional {@link ParamMask}s ({@link #setMasks}) hold chosen parameter elements at exactly zero: their
 * gradients are zeroed before clipping (so the clipping norm only counts trainable elements) and the weights
 * are zeroed again after every optimizer step. Masks are saved in checkpoints and restored on resume.
 */
public final class Trainer {
    private final TrainModel model;
    private final TrainConfig cfg;
    private final Loss loss;
    private final SequenceSampler sampler;
    private final int[] validation;
    private final long validationBytes;
    private final AdamW opt;
    private final LrSchedule schedule;
    private long step;
    private Path lastCheckpoint;
    private long lastCheckpointStep = -1;
    private ParamMask[] masks; // aligned with model.params(); null entries train freely; null array: no masks
    private final Map<String, String> extraInfo = new LinkedHashMap<>();
    private static final String MASK_PREFIX = "mask/";

    /**
     * @param validation      validation token stream (null: none)
     * @param validationBytes UTF-8 bytes of the validation text (for bits per byte; ≤ 0 if unknown)
     */
    public Trainer(TrainModel model, TrainConfig cfg, Loss loss, int[] trainTokens, int[] validation, long validationBytes) {
        this.model = model;
        this.cfg = cfg;
        this.loss = loss;
        this.sampler = new SequenceSampler(trainTokens, cfg.seqLen(), cfg.seed());
        this.validation = validation;
        this.validationBytes = validationBytes;
        this.opt = new AdamW(model.params(), cfg.beta1(), cfg.beta2(), cfg.adamEps(), cfg.weightDecay());
        this.schedule = cfg.schedule();
        model.setCheckpointActivations(cfg.activationCheckpointing());
        for (int t : trainTokens) {
            if (t < 0 || t >= model.config().vocabSize()) throw new IllegalArgumentException("training token " + t + " outside vocabulary of " + model.config().vocabSize());
        }
    }

    /** A trainer continuing from a checkpoint: parameters, optimizer moments, step and data position. */
    public static Trainer resume(Path checkpoint, TrainConfig cfg, Loss loss, int[] trainTokens, int[] validation, long validationBytes) {
        Checkpoint.State s = Checkpoint.load(checkpoint);
        TrainModel m = TrainModel.init(s.config(), 0, false);
        Trainer t = new Trainer(m, cfg, loss, trainTokens, validation, validationBytes);
        List<TrainModel.Param> ps = m.params();
        for (int i = 0; i < ps.size(); i++) {
            TrainModel.Param p = ps.get(i);
            copy(checkpoint, s.tensor(checkpoint, "param/" + p.name()), p.data(), p.name());
            copy(checkpoint, s.tensor(checkpoint, "adam.m/" + p.name()), t.opt.firstMoment(i), p.name());
            copy(checkpoint, s.tensor(checkpoint, "adam.v/" + p.name()), t.opt.secondMoment(i), p.name());
        }
        String seqLen = s.info().get("seq_len");
        if (seqLen != null && Integer.parseInt(seqLen) != cfg.seqLen()) {
            throw new LatheException(checkpoint, "checkpoint was made with sequence length " + seqLen + ", not " + cfg.seqLen());
        }
        String seed = s.info().get("data_seed");
        if (seed != null && Long.parseLong(seed) != cfg.seed()) {
            throw new LatheException(checkpoint, "checkpoint was made with data seed " + seed + ", not " + cfg.seed());
        }
        String seqs = s.info().get("train_sequences");
        if (seqs != null && Integer.parseInt(seqs) != t.sampler.sequences()) {
            throw new LatheException(checkpoint, "checkpoint was made on " + seqs + " training sequences, this data has " + t.sampler.sequences());
        }
        t.opt.setSteps(Long.parseLong(s.info().getOrDefault("adam_steps", Long.toString(s.step()))));
        t.step = s.step();
        try {
            t.sampler.restore(s.rngState(), s.dataEpoch(), (int) s.dataIndex());
        } catch (IllegalArgumentException e) {
            throw new LatheException(checkpoint, "bad data position: " + e.getMessage());
        }
        Map<String, ParamMask> ms = new LinkedHashMap<>();
        for (Map.Entry<String, float[]> e : s.tensors().entrySet()) {
            if (!e.getKey().startsWith(MASK_PREFIX)) continue;
            String name = e.getKey().substring(MASK_PREFIX.length());
            if (!m.hasParam(name)) throw new LatheException(checkpoint, "checkpoint masks unknown parameter '" + name + "'");
            ms.put(name, ParamMask.ofFloats(e.getValue()));
        }
        if (!ms.isEmpty()) {
            try {
                t.setMasks(ms);
            } catch (IllegalArgumentException e) {
                throw new LatheException(checkpoint, "bad mask: " + e.getMessage());
            }
        }
        s.info().forEach((k, v) -> {
            if (!RESERVED_INFO.contains(k)) t.extraInfo.put(k, v);
        });
        t.lastCheckpoint = checkpoint;
        t.lastCheckpointStep = s.step();
        return t;
    }

    private static final java.util.Set<String> RESERVED_INFO = java.util.Set.of("adam_steps", "seq_len", "data_seed", "train_sequences");

    /**
     * Holds the given parameters' masked elements at zero from now on (and zeroes them now). Keys are
     * parameter names; parameters without a mask train freely. Replaces any masks set before; an empty map
     * removes them.
     */
    public void setMasks(Map<String, ParamMask> byName) {
        List<TrainModel.Param> ps = model.params();
        ParamMask[] a = new ParamMask[ps.size()];
        int found = 0;
        for (int i = 0; i < ps.size(); i++) {
            ParamMask mk = byName.get(ps.get(i).name());
            if (mk == null) continue;
            if (mk.size() != ps.get(i).size()) {
                throw new IllegalArgumentException("mask for '" + ps.get(i).name() + "' has " + mk.size() + " elements, the parameter " + ps.get(i).size());
            }
            a[i] = mk;
            found++;
        }
        if (found != byName.size()) {
            for (String n : byName.keySet()) if (!model.hasParam(n)) throw new IllegalArgumentException("no parameter '" + n + "' to mask");
        }
        masks = found == 0 ? null : a;
        if (masks != null) {
            for (int i = 0; i < a.length; i++) if (a[i] != null) a[i].apply(ps.get(i).data());
        }
    }

    /** The masks in use, by parameter name (empty when none). */
    public Map<String, ParamMask> masks() {
        Map<String, ParamMask> out = new LinkedHashMap<>();
        if (masks != null) {
            for (int i = 0; i < masks.length; i++) if (masks[i] != null) out.put(model.params().get(i).name(), masks[i]);
        }
        return Collections.unmodifiableMap(out);
    }

    /**
     * A free-form text value saved with every checkpoint (and restored by {@link #resume}); lets a caller
     * recognise its own checkpoints, e.g. by the model they started from.
     */
    public void putCheckpointInfo(String key, String value) {
        if (RESERVED_INFO.contains(key)) throw new IllegalArgumentException("checkpoint info key '" + key + "' is reserved");
        extraInfo.put(key, value);
    }

    /** The values put with {@link #putCheckpointInfo} (or restored from the checkpoint resumed). */
    public Map<String, String> checkpointInfo() {
        return Collections.unmodifiableMap(extraInfo);
    }

    private static void copy(Path file, float[] src, float[] dst, String name) {
        if (src.length != dst.length) throw new LatheException(file, "tensor '" + name + "' has " + src.length + " values, expected " + dst.length);
        System.arraycopy(src, 0, dst, 0, dst.length);
    }

    public TrainModel model() {
        return model;
    }

    public long step() {
        return step;
    }

    public AdamW optimizer() {
        return opt;
    }

    /** Runs until the configured number of steps. */
    public void run(TrainListener listener) {
        runUntil(cfg.steps(), listener);
    }

    /** Runs until {@code step() == untilStep} (at most the configured number of steps). */
    public void runUntil(long untilStep, TrainListener listener) {
        long target = Math.min(untilStep, cfg.steps());
        long startStep = step;
        long t0 = System.nanoTime();
        long tokensPerStep = (long) cfg.batchSize() * cfg.seqLen() * cfg.gradAccumSteps();
        while (step < target) {
            double lr = schedule.lr(step);
            double[] r = trainStep(lr);
            double secs = (System.nanoTime() - t0) / 1e9;
            long done = step - startStep;
            double tps = done * tokensPerStep / Math.max(secs, 1e-9);
            Duration eta = Duration.ofMillis((long) (secs / done * (cfg.steps() - step) * 1000));
            if (listener != null) listener.onStep(new TrainListener.StepInfo(step, cfg.steps(), r[0], lr, r[1], tps, eta));
            if (cfg.checkpointEvery() > 0 && step % cfg.checkpointEvery() == 0) {
                saveCheckpoint(cfg.checkpointPath());
                if (listener != null) listener.onCheckpoint(step, cfg.checkpointPath());
            }
            if (cfg.evalEvery() > 0 && step % cfg.evalEvery() == 0 && validation != null && listener != null) {
                listener.onValidation(validate());
            }
        }
    }

    /** One optimizer step at learning rate lr; returns {mean loss, gradient norm before clipping}. */
    private double[] trainStep(double lr) {
        int b = cfg.batchSize(), t = cfg.seqLen(), acc = cfg.gradAccumSteps();
        int[][] in = new int[acc][b * t], tg = new int[acc][b * t];
        int total = 0;
        for (int a = 0; a < acc; a++) {
            for (int s = 0; s < b; s++) sampler.next(in[a], tg[a], s * t);
            total += loss.count(tg[a], b * t);
        }
        model.zeroGrad();
        double sum = 0;
        for (int a = 0; a < acc; a++) {
            sum += model.forwardBackward(in[a], tg[a], b, t, loss, total == 0 ? 0f : 1f / total);
        }
        double mean = total == 0 ? 0 : sum / total;
        if (!Double.isFinite(mean)) throw stop("non-finite loss " + mean);
        List<TrainModel.Param> ps = model.params();
        if (masks != null) {
            for (int i = 0; i < masks.length; i++) if (masks[i] != null) masks[i].apply(ps.get(i).grad());
        }
        double norm = AdamW.clipGradNorm(model.params(), cfg.clipNorm());
        if (!Double.isFinite(norm)) throw stop("non-finite gradient norm " + norm);
        opt.step(lr);
        if (masks != null) {
            for (int i = 0; i < masks.length; i++) if (masks[i] != null) masks[i].apply(ps.get(i).data());
        }
        step++;
        return new double[] {mean, norm};
    }

    private LatheException stop(String what) {
        String kept = lastCheckpoint == null ? "no checkpoint was written"
                : "last good checkpoint (step " + lastCheckpointStep + ") kept";
        return new LatheException(lastCheckpoint, what + " at step " + (step + 1) + "; training stopped, " + kept);
    }

    /** Mean loss and bits per byte over the validation stream (or its first evalMaxSequences sequences). */
    public TrainListener.ValidationInfo validate() {
        if (validation == null || validation.length < 2) throw new IllegalStateException("no validation data");
        int t = cfg.seqLen(), b = cfg.batchSize();
        int nSeq = (validation.length - 1 + t - 1) / t;
        boolean capped = cfg.evalMaxSequences() > 0 && cfg.evalMaxSequences() < nSeq;
        if (capped) nSeq = cfg.evalMaxSequences();
        int[] in = new int[b * t], tg = new int[b * t];
        double nll = 0;
        long counted = 0;
        int ignore = loss instanceof CrossEntropyLoss ce ? ce.ignoreIndex() : CrossEntropyLoss.DEFAULT_IGNORE_INDEX;
        for (int s0 = 0; s0 < nSeq; s0 += b) {
            int nb = Math.min(b, nSeq - s0);
            for (int s = 0; s < nb; s++) {
                int start = (s0 + s) * t;
                for (int i = 0; i < t; i++) {
                    int p = start + i;
                    in[s * t + i] = p < validation.length ? validation[p] : 0;
                    tg[s * t + i] = p + 1 < validation.length ? validation[p + 1] : ignore;
                }
            }
            nll += model.lossSum(in, tg, nb, t, loss);
            counted += loss.count(tg, nb * t);
        }
        double bpb = (!capped && validationBytes > 0) ? nll / Math.log(2) / validationBytes : Double.NaN;
        return new TrainListener.ValidationInfo(step, nll / counted, bpb, counted);
    }

    /** Writes a checkpoint (atomically) with everything needed to resume bit-identically. */
    public void saveCheckpoint(Path file) {
        Map<String, float[]> tensors = new LinkedHashMap<>();
        List<TrainModel.Param> ps = model.params();
        for (int i = 0; i < ps.size(); i++) {
            TrainModel.Param p = ps.get(i);
            tensors.put("param/" + p.name(), p.data());
            tensors.put("adam.m/" + p.name(), opt.firstMoment(i));
            tensors.put("adam.v/" + p.name(), opt.secondMoment(i));
            if (masks != null && masks[i] != null) tensors.put(MASK_PREFIX + p.name(), masks[i].toFloats());
        }
        Map<String, String> info = new LinkedHashMap<>(extraInfo);
        info.put("adam_steps", Long.toString(opt.steps()));
        info.put("seq_len", Integer.toString(cfg.seqLen()));
        info.put("data_seed", Long.toString(cfg.seed()));
        info.put("train_sequences", Integer.toString(sampler.sequences()));
        Checkpoint.save(file, new Checkpoint.State(model.config(), step, sampler.epochStartState(), sampler.epoch(),
                sampler.index(), tensors, info));
        lastCheckpoint = file;
        lastCheckpointStep = step;
    }

    /** The last checkpoint written or resumed from (null if none). */
    public Path lastCheckpoint() {
        return lastCheckpoint != null && Files.exists(lastCheckpoint) ? lastCheckpoint : null;
    }
}
