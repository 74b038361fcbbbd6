package dev.lathe.model;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

class CpuCacheTest {
    static void index(Path dir, int i, int level, String type, String size) throws IOException {
        Path p = Files.createDirectories(dir.resolve("index" + i));
        Files.writeString(p.resolve("level"), level + "\n");
        Files.writeString(p.resolve("type"), type + "\n");
        Files.writeString(p.resolve("size"), size + "\n");
    }

    @Test
    void readsTheHighestLevelDataOrUnifiedCache(@TempDir Path dir) throws IOException {
        index(dir, 0, 1, "Data", "48K");
        index(dir, 1, 1, "Instruction", "32K");
        index(dir, 2, 2, "Unified", "2048K");
        index(dir, 3, 3, "Unified", "260M");
        assertThat(CpuCache.read(dir)).isEqualTo(260L << 20);
    }

    @Test
    void skipsBrokenEntriesAndFallsBackWhenNothingIsReadable(@TempDir Path dir) throws IOException {
        assertThat(CpuCache.read(dir.resolve("absent"))).isEqualTo(CpuCache.DEFAULT_BYTES);
        assertThat(CpuCache.read(dir)).isEqualTo(CpuCache.DEFAULT_BYTES);
        index(dir, 0, 2, "Unified", "1024K");
        index(dir, 1, 3, "Unified", "lots");
        Files.createDirectories(dir.resolve("index2")); // no files
        assertThat(CpuCache.read(dir)).isEqualTo(1L << 20);
    }

    @Test
    void parsesSysfsSizes() {
        assertThat(CpuCache.parseSize("32768K")).isEqualTo(32L << 20);
        assertThat(CpuCache.parseSize("1G")).isEqualTo(1L << 30);
        assertThat(CpuCache.parseSize("4096")).isEqualTo(4096);
        assertThat(CpuCache.parseSize("")).isEqualTo(-1);
        assertThat(CpuCache.parseSize("-5M")).isEqualTo(-1);
        assertThat(CpuCache.parseSize("xM")).isEqualTo(-1);
        assertThat(CpuCache.lastLevelBytes()).isPositive();
    }
}
