package dev.lathe.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lathe.Fixtures;
import dev.lathe.io.ModelLoader;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.WeightSource;
import dev.lathe.prune.SparseSafetensors;
import dev.lathe.prune.SparseSource;
import dev.lathe.tensor.TensorOps;
import dev.lathe.train.Checkpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static dev.lathe.cli.MainTest.lathe;
import static org.assertj.core.api.Assertions.assertThat;

class FinetuneCommandTest {
    @TempDir
    Path dir;

    static Path model() {
        return Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
    }

    static Path text() {
        return Fixtures.fixture("text/moby-16k.txt");
    }

    /** Small and fast: 2 sequences of 32 tokens per step. */
    static List<Object> args(Object... more) {
        List<Object> a = new ArrayList<>(List.of("finetune"));
        a.addAll(Arrays.asList(more));
        a.addAll(List.of("--data", text(), "--batch", 2, "--seq-len", 32, "--lr", "1e-3", "--json"));
        return a;
    }

    static MainTest.Run ok(List<Object> a) {
        MainTest.Run r = lathe(a.toArray());
        assertThat(r.code()).as(r.err()).isZero();
        return r;
    }

    static List<Path> listing(Path d) throws Exception {
        try (Stream<Path> s = Files.list(d)) {
            return s.sorted().toList();
        }
    }

    static float[] floats(WeightSource s, String n) {
        return TensorOps.toFloats(s.tensor(n));
    }

    @Test
    void finetunesAGgufIntoALoadableGgufAndLowersValidationLoss() throws Exception {
        Path out = dir.resolve("ft.gguf");
        JsonNode j = ok(args(model(), "--steps", 8, "-o", out)).json();
        assertThat(j.get("step").asLong()).isEqualTo(8);
        assertThat(j.get("masked_tensors").asInt()).isZero(); // a dense model trains freely
        assertThat(j.get("validation_loss").asDouble()).isLessThan(j.get("validation_loss_before").asDouble() - 0.5);
        assertThat(j.get("validation_bpb").asDouble()).isFinite().isPositive();
        assertThat(j.get("format").asText()).isEqualTo("gguf");
        assertThat(listing(dir)).containsExactly(out); // the default work folder is gone
        try (WeightSource a = ModelLoader.open(model()); WeightSource b = ModelLoader.open(out)) {
            assertThat(b.config()).isEqualTo(a.config());
            assertThat(b.gguf().orElseThrow().getString("general.name", "")).isEqualTo(a.gguf().orElseThrow().getString("general.name", ""));
            assertThat(floats(b, "blk.0.ffn_up.weight")).isNotEqualTo(floats(a, "blk.0.ffn_up.weight"));
            LlamaModel m = LlamaModel.load(b);
            int[] ids = dev.lathe.tokenizer.Tokenizers.load(b).orElseThrow().encode("Call me Ishmael.", true, false);
            float[] logits = m.forward(m.newSession(32), ids, 0, ids.length, true);
            for (float v : logits) assertThat(v).isFinite();
        }
    }

    @Test
    void resumeGivesTheSameBytesAsAnUninterruptedRun() throws Exception {
        Path straight = dir.resolve("a.gguf");
        ok(args(model(), "--steps", 8, "-o", straight));
        Path resumed = dir.resolve("b.gguf"), work = dir.resolve("work");
        JsonNode j = ok(args(model(), "--steps", 8, "--until", 3, "--work", work, "-o", resumed)).json();
        assertThat(j.get("step").asLong()).isEqualTo(3);
        assertThat(resumed).doesNotExist();
        assertThat(Checkpoint.load(work.resolve("checkpoint")).step()).isEqualTo(3);
        // without --resume an existing checkpoint is refused
        MainTest.Run again = lathe(args(model(), "--steps", 8, "--work", work, "-o", resumed).toArray());
        assertThat(again.code()).isEqualTo(2);
        assertThat(again.err()).contains("--resume");
        JsonNode k = ok(args(model(), "--steps", 8, "--work", work, "--resume", "-o", resumed)).json();
        assertThat(k.get("start_step").asLong()).isEqualTo(3);
        assertThat(Files.readAllBytes(resumed)).isEqualTo(Files.readAllBytes(straight));
        assertThat(work.resolve("checkpoint")).doesNotExist(); // removed after success; the explicit work folder stays
        assertThat(work.resolve("tokens.cache")).isRegularFile();
        // a checkpoint of another model is refused
        ok(args(model(), "--steps", 8, "--until", 2, "--work", work, "-o", resumed));
        Path other = dir.resolve("other.gguf");
        Files.copy(model(), other);
        MainTest.Run bad = lathe(args(other, "--steps", 8, "--work", work, "--resume", "-o", dir.resolve("c.gguf")).toArray());
        assertThat(bad.code()).as(bad.err()).isEqualTo(2);
        assertThat(bad.err()).contains("was made from");
    }

    @Test
    void aTwoFourSparseFolderStaysTwoFour() throws Exception {
        Path p24 = dir.resolve("p24");
        MainTest.Run p = lathe("prune", model(), "--pattern", "2:4", "-o", p24);
        assertThat(p.code()).as(p.err()).isZero();
        Path out = dir.resolve("p24-ft");
        JsonNode j = ok(args(p24, "--steps", 6, "--weight-decay", "0.1", "-o", out)).json();
        assertThat(j.get("masked_tensors").asInt()).isEqualTo(14);
        assertThat(j.get("masked_sparsity").asDouble()).isEqualTo(0.5);
        assertThat(j.get("masked_zeros_after").asLong()).isEqualTo(j.get("masked_zeros").asLong());
        assertThat(j.get("format").asText()).isEqualTo("nm");
        assertThat(j.get("validation_loss").asDouble()).isLessThan(j.get("validation_loss_before").asDouble());
        assertThat(SparseSource.sparseFormat(out)).isEqualTo(SparseSafetensors.SPARSE24);
        try (SparseSource a = SparseSource.open(p24); SparseSource b = SparseSource.open(out)) {
            assertThat(b.sparse("blk.1.ffn_down.weight")).isPresent();
            for (String n : List.of("blk.0.attn_q.weight", "blk.1.ffn_down.weight", "blk.1.ffn_gate.weight")) {
                float[] before = floats(a, n), after = floats(b, n);
                int changed = 0;
                for (int g = 0; g < after.length; g += 4) {
                    int nz = 0;
                    for (int i = g; i < g + 4; i++) {
                        if (after[i] != 0f) nz++;
                        if (before[i] == 0f) assertThat(after[i]).as(n + "[" + i + "]").isZero();
                        else if (after[i] != before[i]) changed++;
                    }
                    assertThat(nz).as(n + " group " + g / 4).isLessThanOrEqualTo(2);
                }
                assertThat(changed).as(n).isGreaterThan(after.length / 4);
            }
            // and the engine runs it on the sparse kernels
            LlamaModel m = b.load(dev.lathe.model.Parallel.common());
            float[] logits = m.forward(m.newSession(16), new int[]{1, 40, 50, 60}, 0, 4, true);
            for (float v : logits) assertThat(v).isFinite();
        }
    }

    @Test
    void keepSparsityIsAutomaticForAPrunedGgufAndCanBeTurnedOff() throws Exception {
        Path p = dir.resolve("p60.gguf");
        assertThat(lathe("prune", model(), "--sparsity", "0.6", "-o", p).code()).isZero();
        Path kept = dir.resolve("kept.gguf"), free = dir.resolve("free.gguf");
        JsonNode j = ok(args(p, "--steps", 5, "-o", kept)).json();
        assertThat(j.get("masked_tensors").asInt()).isEqualTo(14);
        assertThat(j.get("masked_sparsity").asDouble()).isBetween(0.599, 0.601);
        JsonNode k = ok(args(p, "--steps", 5, "--no-keep-sparsity", "-o", free)).json();
        assertThat(k.get("masked_tensors").asInt()).isZero();
        try (WeightSource a = ModelLoader.open(p); WeightSource b = ModelLoader.open(kept); WeightSource c = ModelLoader.open(free)) {
            float[] w0 = floats(a, "blk.0.ffn_up.weight"), w1 = floats(b, "blk.0.ffn_up.weight"), w2 = floats(c, "blk.0.ffn_up.weight");
            long z1 = 0, z2 = 0;
            for (int i = 0; i < w0.length; i++) {
                if (w0[i] == 0f) assertThat(w1[i]).isZero();
                if (w1[i] == 0f) z1++;
                if (w2[i] == 0f) z2++;
            }
            assertThat(z1).isEqualTo((long) Math.floor(0.6 * w0.length));
            assertThat(z2).isLessThan(w0.length / 100);
        }
    }

    @Test
    void badInputGivesOneLineExitTwoAndWritesNothing() throws Exception {
        Path in = Files.createDirectories(dir.resolve("in"));
        Path corrupt = in.resolve("corrupt.gguf");
        byte[] all = Files.readAllBytes(model());
        Files.write(corrupt, Arrays.copyOf(all, all.length / 3));
        Path notText = in.resolve("bin.txt");
        Files.write(notText, new byte[]{(byte) 0xff, (byte) 0xfe, 0, 1});
        Path tiny = in.resolve("tiny.txt");
        Files.writeString(tiny, "Too short.");
        Path outDir = Files.createDirectories(dir.resolve("outs"));
        Path out = outDir.resolve("o.gguf");
        Object[][] bad = {
                {"finetune", model(), "-o", out},                                              // no --data
                {"finetune", model(), "--data", in.resolve("missing"), "-o", out},
                {"finetune", model(), "--data", text(), "--steps", 0, "-o", out},
                {"finetune", model(), "--data", text(), "--steps", -3, "-o", out},
                {"finetune", model(), "--data", text(), "--lr", 0, "-o", out},
                {"finetune", model(), "--data", text(), "--seq-len", 1, "-o", out},
                {"finetune", model(), "--data", text(), "--seq-len", 100000, "-o", out},
                {"finetune", model(), "--data", text(), "--validation-fraction", 0.7, "-o", out},
                {"finetune", model(), "--data", text(), "--dtype", "q4_k", "-o", out},
                {"finetune", model(), "--data", text(), "--dtype", "q8_0", "-o", outDir.resolve("hf")},
                {"finetune", model(), "--data", text(), "--resume", "-o", out},                // nothing to resume
                {"finetune", corrupt, "--data", text(), "-o", out},
                {"finetune", in.resolve("nope.gguf"), "--data", text(), "-o", out},
                {"finetune", model(), "--data", notText, "--steps", 2, "-o", out},
                {"finetune", model(), "--data", tiny, "--steps", 2, "--seq-len", 64, "-o", out},
                {"finetune", model(), "--data", text(), "--tokenizer", in, "-o", out},
        };
        for (Object[] a : bad) {
            MainTest.Run r = lathe(a);
            assertThat(r.code()).as(Arrays.toString(a) + " -> " + r.err()).isEqualTo(2);
            assertThat(r.err()).startsWith("lathe: ");
            assertThat(r.err().strip().lines().count()).as(r.err()).isEqualTo(1);
            assertThat(listing(outDir)).as(Arrays.toString(a)).isEmpty();
            assertThat(listing(dir)).as(Arrays.toString(a)).containsExactly(in, outDir);
        }
        // a non-empty output folder is refused before any work
        Path full = Files.createDirectories(outDir.resolve("full"));
        Files.writeString(full.resolve("keep.txt"), "x");
        MainTest.Run r = lathe("finetune", model(), "--data", text(), "-o", full);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("not empty");
        assertThat(listing(full)).hasSize(1);
    }
}
