package dev.lathe.train;

/** Learning rate as a function of the optimizer step (0 for the first update). */
@FunctionalInterface
public interface LrSchedule {
    double lr(long step);

    static LrSchedule constant(double lr) {
        return s -> lr;
    }

    /**
     * Linear warm-up from peak/warmup to peak over the first {@code warmup} steps (step s gets
     * peak·(s+1)/warmup), then cosine decay from peak to minLr at step {@code total}; minLr after that.
     */
    static LrSchedule warmupCosine(double peak, double minLr, long warmup, long total) {
        if (warmup < 0 || total < warmup || peak < 0 || minLr < 0) {
            throw new IllegalArgumentException("bad schedule peak=" + peak + " min=" + minLr + " warmup=" + warmup + " total=" + total);
        }
        return s -> {
            if (s < warmup) return peak * (s + 1) / warmup;
            if (total == warmup) return minLr;
            double progress = Math.min(1.0, (double) (s - warmup) / (total - warmup));
            return minLr + 0.5 * (peak - minLr) * (1 + Math.cos(Math.PI * progress));
        };
    }
}
