package dev.lathe.train;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.RecursiveAction;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntConsumer;

/**
 * A small fixed pool of worker threads (one per core by default) for the training kernels. Work is split
 * into independent tasks numbered 0..n-1 that the workers pull in order; each task always computes the same
 * outputs in the same order, so results do not depend on the number of threads.
 */
public final class Parallel {
    private static volatile Parallel common;

    private final int threads;
    private final ForkJoinPool pool;

    public Parallel(int threads) {
        if (threads < 1) throw new IllegalArgumentException("threads " + threads);
        this.threads = threads;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads, p -> {
            var t = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(p);
            t.setDaemon(true);
            t.setName("lathe-train-" + t.getPoolIndex());
            return t;
        }, null, false);
    }

    /** The shared pool with one thread per available core. */
    public static Parallel common() {
        Parallel p = common;
        if (p == null) {
            synchronized (Parallel.class) {
                if (common == null) common = new Parallel(Runtime.getRuntime().availableProcessors());
                p = common;
            }
        }
        return p;
    }

    public int threads() {
        return threads;
    }

    /** Runs body(0..tasks-1), each exactly once, spread over the workers; returns when all are done. */
    public void forEach(int tasks, IntConsumer body) {
        if (tasks <= 0) return;
        if (tasks == 1 || pool == null) {
            for (int i = 0; i < tasks; i++) body.accept(i);
            return;
        }
        if (ForkJoinTask.inForkJoinPool() && ForkJoinTask.getPool() == pool) {
            // nested call from a worker: run inline, the outer level already uses every thread
            for (int i = 0; i < tasks; i++) body.accept(i);
            return;
        }
        AtomicInteger next = new AtomicInteger();
        int workers = Math.min(threads, tasks);
        List<RecursiveAction> actions = new ArrayList<>(workers);
        for (int w = 0; w < workers; w++) {
            actions.add(new RecursiveAction() {
                @Override
                protected void compute() {
                    for (int i; (i = next.getAndIncrement()) < tasks; ) body.accept(i);
                }
            });
        }
        pool.invoke(new RecursiveAction() {
            @Override
            protected void compute() {
                invokeAll(actions);
            }
        });
    }
}
