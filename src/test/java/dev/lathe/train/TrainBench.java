package dev.lathe.train;

import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;

/**
 * A short throughput probe (not a test): trains a small config on random tokens for a few seconds and prints
 * tokens/s and GFLOP/s ≈ 6·params·tokens/s. Args: dim layers ffn seqLen batch seconds [threads].
 */
public final class TrainBench {
    public static void main(String[] args) {
        int dim = Integer.parseInt(args[0]), layers = Integer.parseInt(args[1]), ffn = Integer.parseInt(args[2]);
        int seqLen = Integer.parseInt(args[3]), batch = Integer.parseInt(args[4]);
        double seconds = Double.parseDouble(args[5]);
        int threads = args.length > 6 ? Integer.parseInt(args[6]) : Runtime.getRuntime().availableProcessors();
        ModelConfig cfg = new ModelConfig("llama", dim, layers, dim / 32, dim / 64, 32, ffn, 512, 1e-5f, 10000f,
                RopeStyle.HALF, null, seqLen, false, false);
        Parallel par = new Parallel(threads);
        TrainModel m = TrainModel.init(cfg, 1, true, par);
        Rng r = new Rng(5);
        int[] tokens = new int[batch * seqLen * 64 + 1];
        for (int i = 0; i < tokens.length; i++) tokens[i] = r.nextInt(512);
        TrainConfig tc = TrainConfig.builder().seqLen(seqLen).batchSize(batch).steps(1_000_000).warmupSteps(10).build();
        Trainer t = new Trainer(m, tc, new CrossEntropyLoss(-100, par), tokens, null, 0);
        t.runUntil(6, null); // warm-up (JIT)
        var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        long cpu0 = os.getProcessCpuTime();
        long t0 = System.nanoTime();
        long s0 = t.step();
        while ((System.nanoTime() - t0) / 1e9 < seconds) t.runUntil(t.step() + 1, null);
        double secs = (System.nanoTime() - t0) / 1e9;
        long steps = t.step() - s0;
        double tps = steps * (double) batch * seqLen / secs;
        double cpuSecs = (os.getProcessCpuTime() - cpu0) / 1e9;
        System.out.printf("params %d, threads %d, B=%d T=%d: %d steps in %.2f s wall (%.2f s CPU), %.0f tokens/s, %.2f GFLOP/s (6*params*tokens/s); per CPU-second: %.0f tokens, %.2f GFLOP%n",
                m.parameterCount(), threads, batch, seqLen, steps, secs, cpuSecs, tps, 6.0 * m.parameterCount() * tps / 1e9,
                steps * (double) batch * seqLen / cpuSecs, 6.0 * m.parameterCount() * steps * batch * seqLen / cpuSecs / 1e9);
    }
}
