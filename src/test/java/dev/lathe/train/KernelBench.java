package dev.lathe.train;

/** Not a test: times Kernels.nt on one shape. Args: M N K threads reps. */
public final class KernelBench {
    public static void main(String[] args) {
        int m = Integer.parseInt(args[0]), n = Integer.parseInt(args[1]), k = Integer.parseInt(args[2]);
        Parallel par = new Parallel(Integer.parseInt(args[3]));
        int reps = Integer.parseInt(args[4]);
        Rng r = new Rng(1);
        float[] a = new float[m * k], b = new float[k * n], c = new float[m * n];
        for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian();
        for (int i = 0; i < b.length; i++) b[i] = (float) r.nextGaussian();
        for (int w = 0; w < 40; w++) Kernels.nn(par, a, 0, b, 0, c, 0, n, m, n, k, false);
        long t0 = System.nanoTime();
        long c0 = java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime();
        for (int i = 0; i < reps; i++) Kernels.nn(par, a, 0, b, 0, c, 0, n, m, n, k, false);
        double s = (System.nanoTime() - t0) / 1e9;
        double cpu = (java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime() - c0) / 1e9;
        System.out.printf("nn %dx%dx%d: %.2f GFLOP/s wall, %.2f GFLOP/s per CPU-second of this thread (1 thread runs inline)%n", m, n, k, 2.0 * m * n * k * reps / s / 1e9, 2.0 * m * n * k * reps / cpu / 1e9);
    }
}
