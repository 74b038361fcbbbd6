package dev.lathe.cli;

import dev.lathe.io.ModelLoader;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.WeightSource;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;
import dev.lathe.train.Checkpoint;
import dev.lathe.train.TrainModel;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static dev.lathe.cli.MainTest.lathe;
import static org.assertj.core.api.Assertions.assertThat;

class TrainCommandTest {
    @TempDir
    static Path dir;
    static Path data, tokDir, config, full;
    static MainTest.Run fullRun;

    static final String CONFIG = """
            {"model": {"name": "tiny-ref", "dim": 32, "layers": 2, "heads": 4, "kv_heads": 2, "ffn": 64, "context": 32, "init_seed": 3},
             "training": {"batch": 4, "seq_len": 32, "steps": 12, "lr": 1e-2, "min_lr": 1e-3, "warmup": 2, "seed": 5,
                          "eval_every": 4, "checkpoint_every": 4, "validation_fraction": 0.1, "weight_decay": 0.01}}
            """;

    /** A small seeded text: sentences over a few dozen words, in two files. */
    static String text(long seed, int sentences) {
        String[] words = ("the a cat dog sat on mat and ran to house garden quick brown fox jumps over lazy river boat "
                + "sun moon bright dark cold warm little big old new tree bird sings softly loudly").split(" ");
        Random r = new Random(seed);
        StringBuilder sb = new StringBuilder();
        for (int s = 0; s < sentences; s++) {
            int n = 4 + r.nextInt(6);
            for (int i = 0; i < n; i++) {
                String w = words[r.nextInt(words.length)];
                sb.append(i == 0 ? Character.toUpperCase(w.charAt(0)) + w.substring(1) : w).append(i == n - 1 ? "." : " ");
            }
            sb.append(s % 5 == 4 ? "\n\n" : " ");
        }
        return sb.toString();
    }

    @BeforeAll
    static void trainTokenizerAndFullRun() throws IOException {
        data = Files.createDirectories(dir.resolve("data"));
        Files.writeString(data.resolve("a.txt"), text(1, 400));
        Files.writeString(data.resolve("b.txt"), text(2, 300));
        tokDir = dir.resolve("tok");
        MainTest.Run t = lathe("train-tokenizer", "--data", data, "--vocab", 340, "-o", tokDir, "--json");
        assertThat(t.code()).as(t.err()).isZero();
        assertThat(t.json().get("vocab").asInt()).isEqualTo(340);
        config = dir.resolve("config.json");
        Files.writeString(config, CONFIG);
        full = dir.resolve("full");
        fullRun = lathe("train", "--config", config, "--data", data, "--tokenizer", tokDir, "--out", full, "--json");
        assertThat(fullRun.code()).as(fullRun.err()).isZero();
    }

    static List<String> curve(Path out) throws IOException {
        return Files.readAllLines(out.resolve("curve.csv"));
    }

    @Test
    void trainingLowersTheLossAndWritesCheckpointCurveAndModels() throws IOException {
        var j = fullRun.json();
        assertThat(j.get("step").asLong()).isEqualTo(12);
        assertThat(full.resolve("checkpoint")).isRegularFile();
        assertThat(full.resolve("curve.png")).isRegularFile();
        assertThat(Files.readAllBytes(full.resolve("curve.png"))).startsWith((byte) 0x89, (byte) 'P', (byte) 'N', (byte) 'G');
        List<String> rows = curve(full);
        assertThat(rows.get(0)).isEqualTo("step,train_loss,val_loss,val_bpb");
        assertThat(rows).hasSize(13);
        double first = Double.parseDouble(rows.get(1).split(",")[1]);
        double last = Double.parseDouble(rows.get(12).split(",")[1]);
        assertThat(last).isLessThan(first - 0.5);
        assertThat(rows.get(4).split(",", -1)[2]).isNotEmpty(); // validation at step 4
        assertThat(j.get("validation_bpb").asDouble()).isFinite().isPositive();
        assertThat(full.resolve("tiny-ref.gguf")).isRegularFile();
        assertThat(full.resolve("hf/config.json")).isRegularFile();
        assertThat(full.resolve("hf/model.safetensors")).isRegularFile();
        assertThat(full.resolve("hf/tokenizer.json")).isRegularFile();
    }

    @Test
    void resumeContinuesBitIdentically() throws IOException {
        Path part = dir.resolve("part");
        MainTest.Run a = lathe("train", "--config", config, "--data", data, "--tokenizer", tokDir, "--out", part, "--until", 6);
        assertThat(a.code()).as(a.err()).isZero();
        assertThat(Checkpoint.load(part.resolve("checkpoint")).step()).isEqualTo(6);
        assertThat(part.resolve("tiny-ref.gguf")).doesNotExist();
        MainTest.Run b = lathe("train", "--config", config, "--data", data, "--tokenizer", tokDir, "--out", part, "--resume", "--json");
        assertThat(b.code()).as(b.err()).isZero();
        assertThat(b.json().get("start_step").asLong()).isEqualTo(6);
        Checkpoint.State x = Checkpoint.load(full.resolve("checkpoint")), y = Checkpoint.load(part.resolve("checkpoint"));
        assertThat(y.step()).isEqualTo(12);
        assertThat(y.tensors().keySet()).containsExactlyElementsOf(x.tensors().keySet());
        for (String k : x.tensors().keySet()) assertThat(y.tensors().get(k)).as(k).containsExactly(x.tensors().get(k));
        assertThat(curve(part)).containsExactlyElementsOf(curve(full));
        assertThat(Files.readAllBytes(part.resolve("tiny-ref.gguf"))).isEqualTo(Files.readAllBytes(full.resolve("tiny-ref.gguf")));
    }

    @Test
    void exportedGgufAndHfFolderGiveTheTrainersLogits() {
        Checkpoint.State s = Checkpoint.load(full.resolve("checkpoint"));
        TrainModel tm = TrainModel.init(s.config(), 0, false);
        for (TrainModel.Param p : tm.params()) System.arraycopy(s.tensors().get("param/" + p.name()), 0, p.data(), 0, p.size());
        Tokenizer tok = Tokenizers.fromHfFolder(tokDir);
        int[] ids = tok.encode("The cat sat on the old mat. A bird sings.", true, false);
        assertThat(ids.length).isLessThanOrEqualTo(32).isGreaterThan(5);
        float[] want = tm.forward(ids, 1, ids.length).clone();
        for (Path p : List.of(full.resolve("tiny-ref.gguf"), full.resolve("hf"))) {
            try (WeightSource src = ModelLoader.open(p)) {
                LlamaModel m = LlamaModel.load(src);
                float[] got = m.forward(m.newSession(32), ids, 0, ids.length, true);
                assertThat(got).hasSameSizeAs(want);
                for (int i = 0; i < want.length; i++) assertThat(Math.abs(got[i] - want[i])).as(p + " logit " + i).isLessThan(1e-4f);
                Tokenizer t2 = Tokenizers.load(src).orElseThrow();
                assertThat(t2.encode("The old river boat.", true, false)).containsExactly(tok.encode("The old river boat.", true, false));
            }
        }
    }

    @Test
    void exportOnlyWritesF16WeightsFromTheCheckpoint() throws IOException {
        Path e = Files.createDirectories(dir.resolve("export16"));
        Files.copy(full.resolve("checkpoint"), e.resolve("checkpoint"));
        MainTest.Run r = lathe("train", "--config", config, "--tokenizer", tokDir, "--out", e, "--export-only", "--dtype", "F16");
        assertThat(r.code()).as(r.err()).isZero();
        Tokenizer tok = Tokenizers.fromHfFolder(tokDir);
        int[] ids = tok.encode("The cat sat on the old mat.", true, false);
        float[] want, got;
        try (WeightSource a = ModelLoader.open(full.resolve("tiny-ref.gguf")); WeightSource b = ModelLoader.open(e.resolve("tiny-ref.gguf"))) {
            assertThat(b.tensor("blk.0.attn_q.weight").type()).isEqualTo(dev.lathe.tensor.GgmlType.F16);
            LlamaModel ma = LlamaModel.load(a), mb = LlamaModel.load(b);
            want = ma.forward(ma.newSession(32), ids, 0, ids.length, true);
            got = mb.forward(mb.newSession(32), ids, 0, ids.length, true);
        }
        double maxDiff = 0;
        for (int i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
        assertThat(maxDiff).isGreaterThan(0).isLessThan(0.05);
        assertThat(e.resolve("hf/model.safetensors")).isRegularFile();
    }

    @Test
    void badInputExitsWithCode2AndOverwritesNothing() throws IOException {
        Path o = dir.resolve("bad");
        MainTest.Run r = lathe("train", "--config", config, "--data", dir.resolve("missing"), "--tokenizer", tokDir, "--out", o);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("missing").contains("no such file");
        Path empty = Files.createDirectories(dir.resolve("emptydata"));
        Files.writeString(empty.resolve("e.txt"), "");
        r = lathe("train", "--config", config, "--data", empty, "--tokenizer", tokDir, "--out", o);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("no text");
        Path c1 = dir.resolve("c1.json");
        Files.writeString(c1, CONFIG.replace("\"heads\": 4", "\"heads\": 5"));
        r = lathe("train", "--config", c1, "--data", data, "--tokenizer", tokDir, "--out", o);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("c1.json").contains("do not divide width 32");
        Path c2 = dir.resolve("c2.json");
        Files.writeString(c2, CONFIG.replace("\"kv_heads\": 2", "\"kv_heads\": 3"));
        r = lathe("train", "--config", c2, "--data", data, "--tokenizer", tokDir, "--out", o);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("c2.json").contains("KV heads 3 do not divide heads 4");
        assertThat(o).doesNotExist();

        // a corrupt checkpoint: resume refuses, the file is left as it was
        Path c = dir.resolve("corrupt");
        Files.createDirectories(c);
        byte[] ck = Files.readAllBytes(full.resolve("checkpoint"));
        ck[ck.length / 2] ^= 0x40;
        Files.write(c.resolve("checkpoint"), ck);
        r = lathe("train", "--config", config, "--data", data, "--tokenizer", tokDir, "--out", c, "--resume");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("checkpoint").containsAnyOf("corrupt", "checksum", "truncated");
        assertThat(Files.readAllBytes(c.resolve("checkpoint"))).isEqualTo(ck);
        // an existing checkpoint without --resume is not overwritten
        r = lathe("train", "--config", config, "--data", data, "--tokenizer", tokDir, "--out", c);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("--resume");
        assertThat(Files.readAllBytes(c.resolve("checkpoint"))).isEqualTo(ck);
    }

    @Test
    void trainTokenizerBadInputExitsWithCode2() throws IOException {
        Path o = dir.resolve("badtok");
        MainTest.Run r = lathe("train-tokenizer", "--data", dir.resolve("nope"), "--vocab", 300, "-o", o);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("nope");
        Path empty = dir.resolve("empty.txt");
        Files.writeString(empty, "");
        r = lathe("train-tokenizer", "--data", empty, "--vocab", 300, "-o", o);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("empty.txt").contains("no text");
        r = lathe("train-tokenizer", "--data", data, "--vocab", 100_000, "-o", o);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("larger than the data supports");
        Path bad = dir.resolve("bad.txt");
        byte[] b = "caf\u00e9 ok ".getBytes(StandardCharsets.UTF_8);
        byte[] withBad = java.util.Arrays.copyOf(b, b.length + 1);
        withBad[b.length] = (byte) 0xFF;
        Files.write(bad, withBad);
        r = lathe("train-tokenizer", "--data", bad, "--vocab", 300, "-o", o);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("bad.txt").contains("invalid UTF-8 at byte offset " + b.length);
        assertThat(o).doesNotExist();
    }
}
