package dev.lathe.eval;

import dev.lathe.Fixtures;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.WeightSource;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class BenchTest {
    @Test
    void measuresPrefillDecodeAndPeakRss() {
        try (WeightSource src = dev.lathe.io.ModelLoader.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            Bench.Report r = Bench.run(LlamaModel.load(src), 16, 8, 3, LlamaModel.KvType.F32, 1);
            assertThat(r.prefillRuns()).hasSize(3);
            assertThat(r.prefillTokensPerSecond()).isPositive();
            assertThat(r.decodeTokensPerSecond()).isPositive();
            assertThat(r.prefillTokensPerSecond()).isBetween(min(r.prefillRuns()), max(r.prefillRuns()));
            if (java.nio.file.Files.exists(java.nio.file.Path.of("/proc/self/status"))) assertThat(r.peakRssBytes()).isGreaterThan(1 << 20);
            assertThat(r.toString()).contains("prefill").contains("decode");
        }
        assertThat(Bench.median(new double[]{3, 1, 2})).isEqualTo(2.0);
        assertThat(Bench.median(new double[]{4, 1, 2, 3})).isEqualTo(2.5);
    }

    @org.junit.jupiter.api.Test
    void measuresMemoryBandwidthOnAllThreadsOfThePool() {
        try (dev.lathe.model.Parallel pool = new dev.lathe.model.Parallel(2)) {
            double gbps = MemoryBandwidth.readGBps(pool, 64L << 20, 3);
            assertThat(gbps).isPositive().isLessThan(10_000);
        }
    }

    static double min(double[] v) {
        return java.util.Arrays.stream(v).min().orElseThrow();
    }

    static double max(double[] v) {
        return java.util.Arrays.stream(v).max().orElseThrow();
    }
}
