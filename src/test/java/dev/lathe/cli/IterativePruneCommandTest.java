package dev.lathe.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lathe.Fixtures;
import dev.lathe.io.ModelLoader;
import dev.lathe.model.WeightSource;
import dev.lathe.prune.IterativePruner;
import dev.lathe.tensor.TensorOps;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;

import static dev.lathe.cli.MainTest.lathe;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class IterativePruneCommandTest {
    @TempDir
    Path dir;

    static Path model() {
        return Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
    }

    static Path text() {
        return Fixtures.fixture("text/moby-16k.txt");
    }

    @Test
    void iterativeMagnitudeReachesTheTargetWithRecoveryBetweenRounds() throws Exception {
        Path out = dir.resolve("it.gguf");
        MainTest.Run r = lathe("prune", model(), "--sparsity", "0.7", "--iterative", 3, "--recover-steps", 3, "--data", text(),
                "--recover-batch", 2, "--recover-seq-len", 32, "--recover-lr", "1e-3", "-o", out, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("schedule").asText()).isEqualTo("cubic");
        assertThat(j.get("rounds")).hasSize(3);
        double[] s = IterativePruner.sparsities(IterativePruner.Schedule.CUBIC, 0.7, 3);
        for (int i = 0; i < 3; i++) {
            JsonNode rd = j.get("rounds").get(i);
            assertThat(rd.get("target_sparsity").asDouble()).isCloseTo(s[i], within(1e-12));
            assertThat(rd.get("sparsity").asDouble()).isCloseTo(s[i], within(1e-5));
            assertThat(rd.get("validation_loss_recovered").asDouble()).isLessThan(rd.get("validation_loss_pruned").asDouble());
        }
        assertThat(j.get("sparsity").asDouble()).isCloseTo(0.7, within(1e-5));
        try (WeightSource a = ModelLoader.open(model()); WeightSource b = ModelLoader.open(out)) {
            // recovery trained everything, norms and head included
            assertThat(TensorOps.toFloats(b.tensor("output.weight"))).isNotEqualTo(TensorOps.toFloats(a.tensor("output.weight")));
            float[] w = TensorOps.toFloats(b.tensor("blk.1.ffn_down.weight"));
            long z = 0;
            for (float v : w) if (v == 0f) z++;
            assertThat(z).isEqualTo((long) Math.floor(0.7 * w.length));
        }
    }

    @Test
    void recoverStepsAloneIsOneShotPlusRecoveryAndKeepsTwoFour() throws Exception {
        Path out = dir.resolve("p24");
        MainTest.Run r = lathe("prune", model(), "--pattern", "2:4", "--recover-steps", 3, "--data", text(),
                "--recover-batch", 2, "--recover-seq-len", 32, "--recover-lr", "1e-3", "-o", out, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.json().get("rounds")).hasSize(1);
        assertThat(r.json().get("format").asText()).isEqualTo("nm");
        try (var s = dev.lathe.prune.SparseSource.open(out)) { // the 2:4 reader checks every row
            assertThat(s.sparse("blk.0.attn_q.weight")).isPresent();
        }
    }

    @Test
    void badIterativeOptionsExitTwoBeforeAnyWork() throws Exception {
        Path out = dir.resolve("o.gguf");
        Object[][] bad = {
                {"prune", model(), "--sparsity", "0.5", "--iterative", 0, "--data", text(), "-o", out},
                {"prune", model(), "--sparsity", "0.5", "--iterative", 2, "-o", out},                              // no --data
                {"prune", model(), "--pattern", "2:4", "--iterative", 2, "--data", text(), "-o", out},
                {"prune", model(), "--sparsity", "0.5", "--iterative", 2, "--schedule", "exp", "--data", text(), "-o", out},
                {"prune", model(), "--sparsity", "0.5", "--iterative", 2, "--recover-steps", -1, "--data", text(), "-o", out},
                {"prune", model(), "--sparsity", "0.5", "--iterative", 2, "--data", dir.resolve("missing"), "-o", out},
                {"prune", model(), "--sparsity", "0.5", "--data", text(), "-o", out},                              // --data alone
                {"prune", model(), "--sparsity", "0.5", "--iterative", 2, "--method", "wanda", "--data", text(), "-o", out},
        };
        for (Object[] a : bad) {
            MainTest.Run r = lathe(a);
            assertThat(r.code()).as(Arrays.toString(a) + " -> " + r.err()).isEqualTo(2);
            assertThat(r.err()).startsWith("lathe: ");
            assertThat(r.err().strip().lines().count()).as(r.err()).isEqualTo(1);
            try (Stream<Path> s = Files.list(dir)) {
                assertThat(s.count()).as(Arrays.toString(a)).isZero();
            }
        }
    }
}
