package dev.lathe.model;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A small reusable thread pool for data-parallel loops (matmul rows, attention heads). The calling thread
 * takes part, so {@code threads} counts it: a pool of 1 runs everything inline. Work is split into chunks
 * that threads claim from an atomic counter. A call made while the pool is busy (from a worker, or from a
 * second thread) runs inline on the caller, so nesting and concurrent use are safe.
 */
public final class Parallel implements AutoCloseable {

    /** Body of a parallel loop over {@code [from, to)}; {@code worker} is in {@code [0, threads)}. */
    @FunctionalInterface
    public interface Body {
        void run(int worker, int from, int to);
    }

    private static volatile Parallel common;

    private final int threads;
    private final Thread[] workers;
    private final AtomicBoolean busy = new AtomicBoolean();
    private final AtomicInteger next = new AtomicInteger();
    private volatile int generation;
    private volatile boolean closed;
    private volatile Body body;
    private volatile int total;
    private volatile int grain;

    public Parallel(int threads) {
        if (threads < 1) throw new IllegalArgumentException("thread count must be >= 1, got " + threads);
        this.threads = threads;
        this.workers = new Thread[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            final int id = i + 1;
            Thread t = new Thread(() -> workerLoop(id), "lathe-worker-" + id);
            t.setDaemon(true);
            workers[i] = t;
            t.start();
        }
    }

    /**
     * The shared pool. Its size is the system property {@code lathe.threads} if set, else the number of
     * available processors.
     */
    public static Parallel common() {
        Parallel p = common;
        if (p == null) {
            synchronized (Parallel.class) {
                p = common;
                if (p == null) {
                    int n = Integer.getInteger("lathe.threads", Runtime.getRuntime().availableProcessors());
                    common = p = new Parallel(Math.max(1, n));
                }
            }
        }
        return p;
    }

    /** Replaces the shared pool by one of {@code threads} threads (the old one is closed). */
    public static synchronized void setCommonThreads(int threads) {
        Parallel old = common;
        if (old != null && old.threads == threads) return;
        common = new Parallel(threads);
        if (old != null) old.close();
    }

    public int threads() {
        return threads;
    }

    /**
     * Runs {@code body} over {@code [0, n)} in chunks of at least {@code minChunk} items, on all threads, and
     * returns when every chunk is done.
     */
    public void forRange(int n, int minChunk, Body b) {
        if (n <= 0) return;
        minChunk = Math.max(1, minChunk);
        if (threads == 1 || n <= minChunk || closed || !busy.compareAndSet(false, true)) {
            b.run(0, 0, n);
            return;
        }
        try {
            // about 4 chunks per thread for balance, but never smaller than minChunk
            int g = Math.max(minChunk, (n + threads * 4 - 1) / (threads * 4));
            this.body = b;
            this.total = n;
            this.grain = g;
            next.set(0);
            int gen = generation + 1;
            generation = gen;
            for (Thread t : workers) LockSupport.unpark(t);
            Throwable err = drain(0);
            // every chunk is claimed; late workers must not start, and running ones must finish
            finished = gen;
            int spins = 0;
            while (inside.get() > 0) {
                if (++spins < 2000) Thread.onSpinWait();
                else Thread.yield();
            }
            this.body = null;
            Throwable werr = workerError;
            workerError = null;
            if (err == null) err = werr;
            if (err instanceof RuntimeException re) throw re;
            if (err instanceof Error e) throw e;
            if (err != null) throw new RuntimeException(err);
        } finally {
            busy.set(false);
        }
    }

    private final AtomicInteger inside = new AtomicInteger();
    private volatile int finished;

    private volatile Throwable workerError;

    private Throwable drain(int worker) {
        Body b = body;
        int n = total, g = grain;
        Throwable err = null;
        while (true) {
            int from = next.getAndAdd(g);
            if (from >= n) break;
            int to = Math.min(n, from + g);
            try {
                if (err == null) b.run(worker, from, to);
            } catch (Throwable t) {
                err = t;
            }
        }
        return err;
    }

    private void workerLoop(int id) {
        int seen = 0;
        while (!closed) {
            int spins = 0;
            while (generation == seen && !closed) {
                // spin a little (back-to-back loops in a forward pass), then sleep until unparked
                if (++spins < 20000) Thread.onSpinWait();
                else LockSupport.park(this);
            }
            if (closed) break;
            int gen = generation;
            seen = gen;
            inside.incrementAndGet();
            try {
                // the caller may already have done all the work (this thread was slow to be scheduled)
                if (generation == gen && finished != gen) {
                    Throwable err = drain(id);
                    if (err != null) workerError = err;
                }
            } finally {
                inside.decrementAndGet();
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread t : workers) LockSupport.unpark(t);
    }
}
