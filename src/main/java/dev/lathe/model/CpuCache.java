package dev.lathe.model;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The size of this machine's last-level CPU cache, read from Linux sysfs. */
public final class CpuCache {
    private CpuCache() {}

    /** Assumed when sysfs does not say (a desktop CPU's L3). */
    public static final long DEFAULT_BYTES = 32L << 20;

    private static volatile long cached = -1;

    /** Bytes of the highest-level data or unified cache of cpu0 ({@link #DEFAULT_BYTES} when unknown). */
    public static long lastLevelBytes() {
        long c = cached;
        if (c < 0) cached = c = read(Path.of("/sys/devices/system/cpu/cpu0/cache"));
        return c;
    }

    /** Reads {@code dir}/index*&#47;{level,type,size}; package-visible for tests. */
    static long read(Path dir) {
        int bestLevel = -1;
        long best = -1;
        try (var s = Files.list(dir)) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith("index")).toList()) {
                try {
                    String type = Files.readString(p.resolve("type")).trim();
                    if (type.equals("Instruction")) continue;
                    int level = Integer.parseInt(Files.readString(p.resolve("level")).trim());
                    long size = parseSize(Files.readString(p.resolve("size")).trim());
                    if (size > 0 && level > bestLevel) {
                        bestLevel = level;
                        best = size;
                    }
                } catch (IOException | NumberFormatException e) {
                    // an unreadable entry is skipped; the others decide
                }
            }
        } catch (IOException e) {
            return DEFAULT_BYTES;
        }
        return best > 0 ? best : DEFAULT_BYTES;
    }

    /** "32768K", "260M", "1G" or a plain byte count; -1 when it is none of these. */
    static long parseSize(String s) {
        if (s.isEmpty()) return -1;
        char u = Character.toUpperCase(s.charAt(s.length() - 1));
        long mul = switch (u) {
            case 'K' -> 1L << 10;
            case 'M' -> 1L << 20;
            case 'G' -> 1L << 30;
            default -> 1;
        };
        String num = mul == 1 ? s : s.substring(0, s.length() - 1);
        try {
            long v = Long.parseLong(num.trim());
            return v < 0 ? -1 : v * mul;
        } catch (NumberFormatException e) {
            return -1;
        }
    }
}
