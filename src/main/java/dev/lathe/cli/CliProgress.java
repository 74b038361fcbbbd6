package dev.lathe.cli;

import java.io.PrintStream;
import java.util.Locale;

/**
 * A one-line progress display on stderr with percentage, rate and ETA. It redraws in place on a terminal
 * and prints a line every few seconds otherwise (logs, CI), so long jobs always show where they are; with
 * {@code --json} too, whose one JSON object goes to stdout.
 */
final class CliProgress implements AutoCloseable {
    private final String task;
    private final PrintStream err;
    private final boolean tty = System.console() != null;
    private final long start = System.nanoTime();
    private long lastPrint;
    private boolean printed;

    CliProgress(String task) {
        this.task = task;
        this.err = System.err;
    }

    /** Reports {@code done} of {@code total} units; {@code detail} is shown after the bar (may be empty). */
    synchronized void update(long done, long total, String detail) {
        long now = System.nanoTime();
        boolean last = done >= total;
        if (!last && now - lastPrint < (tty ? 200_000_000L : 5_000_000_000L)) return;
        lastPrint = now;
        double elapsed = (now - start) / 1e9;
        double frac = total > 0 ? Math.min(1.0, (double) done / total) : 0;
        String eta = done > 0 && !last ? fmt(elapsed * (total - done) / done) : last ? "done" : "?";
        String line = String.format(Locale.ROOT, "%s %5.1f%% %d/%d  elapsed %s  ETA %s%s", task, 100 * frac, done, total,
                fmt(elapsed), eta, detail == null || detail.isEmpty() ? "" : "  " + detail);
        if (tty) {
            err.print("\r" + line + "\u001b[K");
            if (last) err.println();
        } else {
            err.println(line);
        }
        printed = true;
    }

    static String fmt(double s) {
        if (!Double.isFinite(s)) return "?";
        long t = Math.round(s);
        if (t >= 3600) return String.format(Locale.ROOT, "%dh%02dm", t / 3600, (t % 3600) / 60);
        if (t >= 60) return String.format(Locale.ROOT, "%dm%02ds", t / 60, t % 60);
        return t + "s";
    }

    @Override
    public synchronized void close() {
        if (printed && tty) err.flush();
    }
}
