package dev.lathe.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lathe.Fixtures;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

class QuantizeCommandTest {
    @TempDir
    Path tmp;

    @Test
    void rtnQ4KMIsByteIdenticalToLlamaQuantize() {
        Path out = tmp.resolve("q4km.gguf");
        MainTest.Run r = MainTest.lathe("quantize", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--method", "rtn",
                "--type", "Q4_K_M", "-o", out, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("format").asText()).isEqualTo("gguf");
        assertThat(j.get("tensor_types").get("Q6_K").asInt()).isEqualTo(3);
        try (GgufFile mine = GgufFile.open(out); GgufFile ref = GgufFile.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-Q4_K_M.gguf"))) {
            assertThat(mine.tensorInfos().keySet()).containsExactlyElementsOf(ref.tensorInfos().keySet());
            for (String n : ref.tensorInfos().keySet()) {
                Tensor a = ref.tensor(n), b = mine.tensor(n);
                assertThat(b.type()).as(n).isEqualTo(a.type());
                assertThat(b.data().mismatch(a.data())).as(n).isEqualTo(-1L);
            }
            assertThat(mine.getLong("general.file_type", -1)).isEqualTo(15);
        }
        // from the Hugging Face checkpoint: q/k rows are permuted to GGUF's layout, the data is the same
        Path fromHf = tmp.resolve("q4km-hf.gguf");
        r = MainTest.lathe("quantize", Fixtures.fixture("tiny-llama/hf"), "--type", "Q4_K_M", "-o", fromHf, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        try (GgufFile mine = GgufFile.open(fromHf); GgufFile ref = GgufFile.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-Q4_K_M.gguf"))) {
            for (String n : ref.tensorInfos().keySet()) {
                assertThat(mine.tensor(n).data().mismatch(ref.tensor(n).data())).as("from HF: " + n).isEqualTo(-1L);
            }
        }
    }

    @Test
    void awqFoldedNormsAreWrittenToTheFile() throws IOException {
        // a trained model (random weights have no outlier channels, so AWQ would choose no scaling there)
        Path model = Path.of("models/lathe-ref/lathe-ref.gguf");
        Path calib = Fixtures.data("text/train/austen-prideprejudice.txt");
        Path text = Fixtures.data("text/heldout/austen-persuasion.txt");
        Path awq = tmp.resolve("awq.gguf"), rtn = tmp.resolve("rtn.gguf");
        MainTest.Run r = MainTest.lathe("quantize", model, "--method", "awq", "--type", "Q4_0", "--pure", "--calib", calib,
                "--samples", 4, "--seq-len", 64, "--awq-grid", 4, "-o", awq);
        assertThat(r.code()).as(r.err()).isZero();
        r = MainTest.lathe("quantize", model, "--type", "Q4_0", "--pure", "-o", rtn);
        assertThat(r.code()).as(r.err()).isZero();
        int changed = 0;
        try (GgufFile a = GgufFile.open(awq); GgufFile src = GgufFile.open(model)) {
            for (int l = 0; l < 8; l++) {
                for (String n : new String[]{"blk." + l + ".attn_norm.weight", "blk." + l + ".ffn_norm.weight"}) {
                    if (a.tensor(n).data().mismatch(src.tensor(n).data()) != -1) changed++;
                }
            }
        }
        assertThat(changed).as("norms that AWQ rescaled").isPositive();
        double[] ppl = new double[2];
        for (int i = 0; i < 2; i++) {
            MainTest.Run e = MainTest.lathe("eval", i == 0 ? awq : rtn, "--text", text, "--ctx", 256, "--chunks", 4, "--json");
            assertThat(e.code()).as(e.err()).isZero();
            ppl[i] = e.json().get("ppl").asDouble();
        }
        // without the folded norms the scaled weights make the model much worse (PPL 54.5 -> 60.6 at Q4_K_M)
        assertThat(ppl[0]).isLessThan(ppl[1] * 1.01);
    }

    @Test
    void gptqRunsOnTheHeadUnlessRtnHeadIsAsked() throws IOException {
        Path calib = Fixtures.data("text/train/austen-prideprejudice.txt");
        Path model = Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
        Path[] outs = {tmp.resolve("head-gptq.gguf"), tmp.resolve("head-rtn.gguf")};
        for (int i = 0; i < 2; i++) {
            MainTest.Run r = MainTest.lathe("quantize", model, "--method", "gptq", "--type", "Q4_0", "--pure", "--calib", calib,
                    "--samples", 4, "--seq-len", 64, "-o", outs[i], i == 0 ? "--json" : "--rtn-head");
            assertThat(r.code()).as(r.err()).isZero();
        }
        try (GgufFile a = GgufFile.open(outs[0]); GgufFile b = GgufFile.open(outs[1])) {
            // the same blocks, a different head
            assertThat(a.tensor("blk.0.attn_q.weight").data().mismatch(b.tensor("blk.0.attn_q.weight").data())).isEqualTo(-1L);
            assertThat(a.tensor("output.weight").data().mismatch(b.tensor("output.weight").data())).isNotEqualTo(-1L);
        }
    }

    @Test
    void gptqQ4KEndToEndLoadsAndKeepsPerplexity() {
        Path out = tmp.resolve("gptq.gguf");
        Path text = Fixtures.fixture("text/moby-16k.txt");
        MainTest.Run r = MainTest.lathe("quantize", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--method", "gptq",
                "--type", "Q4_K_S", "--pure", "--calib", Fixtures.data("text/train/austen-prideprejudice.txt"), "--samples", 8, "--seq-len", 128,
                "-o", out, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.json().get("calibration_samples").asInt()).isEqualTo(8);
        MainTest.Run e = MainTest.lathe("eval", out, "--text", text, "--ctx", 128, "--chunks", 20, "--json");
        assertThat(e.code()).as(e.err()).isZero();
        MainTest.Run f = MainTest.lathe("eval", Fixtures.fixture("tiny-llama/gguf/tiny-llama-Q4_K_S.gguf"), "--text", text, "--ctx", 128,
                "--chunks", 20, "--json");
        double mine = e.json().get("ppl").asDouble(), ref = f.json().get("ppl").asDouble();
        System.out.printf("PPL (20 chunks): GPTQ Q4_K %.4f, llama.cpp Q4_K_S %.4f%n", mine, ref);
        assertThat(mine).isFinite();
        assertThat(Math.abs(mine / ref - 1)).isLessThan(0.05);
    }

    @Test
    void autoMixMeetsTheBudgetAndReusesItsMeasurements() throws IOException {
        Path model = Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
        Path calib = Fixtures.data("text/train/austen-prideprejudice.txt");
        Path sens = tmp.resolve("sens.json");
        Path out = tmp.resolve("auto.gguf");
        MainTest.Run r = MainTest.lathe("quantize", model, "--type", "auto", "--bpw", 5.0, "--mix-types", "Q3_K,Q4_K,Q6_K", "--mix-chunks", 2,
                "--mix-ctx", 64, "--calib", calib, "--sensitivity", sens, "-o", out, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.json().get("bpw").asDouble()).isLessThanOrEqualTo(5.0).isGreaterThan(4.5);
        assertThat(r.json().get("type").asText()).isEqualTo("auto-5.00");
        assertThat(r.json().get("notes").get(0).asText()).contains("measured mix").contains("reused");
        assertThat(sens).exists();
        assertThat(Files.list(tmp).map(Path::toString).filter(s -> s.endsWith(".tmp")).toList()).isEmpty();
        try (GgufFile g = GgufFile.open(out)) {
            java.util.Set<String> types = new java.util.TreeSet<>();
            for (String n : dev.lathe.compress.QuantPlan.quantizable(GgufWeightSourceOf(model))) types.add(g.tensor(n).type().name());
            assertThat(types).hasSizeGreaterThan(1).isSubsetOf("Q3_K", "Q4_K", "Q6_K");
        }
        // other budget, same measurements: nothing measured again
        Path out2 = tmp.resolve("auto2.gguf");
        r = MainTest.lathe("quantize", model, "--type", "auto", "--bpw", 4.0, "--mix-types", "Q3_K,Q4_K,Q6_K", "--mix-chunks", 2,
                "--mix-ctx", 64, "--calib", calib, "--sensitivity", sens, "-o", out2, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.json().get("bpw").asDouble()).isLessThanOrEqualTo(4.0);
        assertThat(r.json().get("notes").get(0).asText()).contains(" 0 candidates measured").doesNotContain("GPTQ");
        // with GPTQ the same measurements are priced with GPTQ's error ratios (by default; --mix-price rtn turns it off)
        r = MainTest.lathe("quantize", model, "--type", "auto", "--bpw", 4.0, "--mix-types", "Q3_K,Q4_K,Q6_K", "--mix-chunks", 2,
                "--mix-ctx", 64, "--calib", calib, "--sensitivity", sens, "--method", "gptq", "--samples", 4, "--seq-len", 64, "-o", out2, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.json().get("bpw").asDouble()).isLessThanOrEqualTo(4.0);
        assertThat(r.json().get("notes").get(0).asText()).contains(" 0 candidates measured").contains("priced with GPTQ's error ratios");
        r = MainTest.lathe("quantize", model, "--type", "auto", "--bpw", 4.0, "--mix-types", "Q3_K,Q4_K,Q6_K", "--mix-chunks", 2,
                "--mix-ctx", 64, "--calib", calib, "--sensitivity", sens, "--method", "gptq", "--mix-price", "rtn", "--samples", 4, "--seq-len", 64, "-o", out2, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.json().get("notes").get(0).asText()).doesNotContain("GPTQ");
        // bad combinations: one line, exit code 2, no output
        Path bad = tmp.resolve("bad.gguf");
        for (Object[] args : new Object[][] {
                {"--type", "auto", "--calib", calib},
                {"--type", "auto", "--bpw", 4},
                {"--type", "Q4_K_M", "--bpw", 4},
                {"--type", "auto", "--bpw", 4, "--calib", calib, "--mix-types", "int4-g128"},
                {"--type", "auto", "--bpw", 4, "--calib", calib, "--mix-measure", "some"},
                {"--type", "auto", "--bpw", 4, "--calib", calib, "--mix-price", "some"},
                {"--type", "Q4_K_M", "--mix-price", "gptq"},
                {"--type", "auto", "--bpw", 1, "--calib", calib, "--mix-chunks", 1, "--mix-ctx", 32}}) {
            Object[] all = new Object[args.length + 4];
            all[0] = "quantize";
            all[1] = model;
            System.arraycopy(args, 0, all, 2, args.length);
            all[args.length + 2] = "-o";
            all[args.length + 3] = bad;
            MainTest.Run b = MainTest.lathe(all);
            assertThat(b.code()).as(java.util.Arrays.toString(args) + b.err()).isEqualTo(2);
            assertThat(b.err().strip().lines().count()).isEqualTo(1);
            assertThat(bad).doesNotExist();
        }
    }

    private static dev.lathe.model.WeightSource GgufWeightSourceOf(Path p) throws IOException {
        return dev.lathe.io.gguf.GgufWeightSource.open(p);
    }

    @Test
    void imatrixCommandWritesLlamaCppFormat() throws IOException {
        Path out = tmp.resolve("imatrix.dat");
        MainTest.Run r = MainTest.lathe("imatrix", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "-f", Fixtures.fixture("text/moby-16k.txt"),
                "-c", 128, "--chunks", 10, "-o", out, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.json().get("entries").asInt()).isEqualTo(14);
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(out)).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(b.getInt()).isEqualTo(14);
        int len = b.getInt();
        b.position(b.position() + len);
        assertThat(b.getInt()).isEqualTo(10); // ncall = chunks
    }

    @Test
    void badInputIsOneLineAndExitCode2WithoutOutput() throws IOException {
        Path f32 = Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
        // imatrix of another model: wrong length for a tensor
        Path badIm = tmp.resolve("bad.dat");
        ByteBuffer b = ByteBuffer.allocate(4 + 4 + 22 + 8 + 4 * 7 + 8).order(ByteOrder.LITTLE_ENDIAN);
        byte[] name = "blk.0.attn_q.weight".getBytes();
        b.putInt(1).putInt(name.length).put(name).putInt(1).putInt(7);
        for (int i = 0; i < 7; i++) b.putFloat(1f);
        b.putInt(1).putInt(0);
        Files.write(badIm, java.util.Arrays.copyOf(b.array(), b.position()));
        Path out = tmp.resolve("x.gguf");
        MainTest.Run r = MainTest.lathe("quantize", f32, "--method", "imatrix", "--imatrix", badIm, "--type", "Q4_K_M", "-o", out);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("another model").doesNotContain("\tat ");
        assertThat(out).doesNotExist();
        // too few calibration tokens
        Path tiny = tmp.resolve("tiny.txt");
        Files.writeString(tiny, "Call me Ishmael.");
        r = MainTest.lathe("quantize", f32, "--method", "gptq", "--calib", tiny, "--seq-len", 128, "--type", "Q4_0", "-o", out);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("too few calibration tokens");
        assertThat(out).doesNotExist();
        // GPTQ without calibration text
        r = MainTest.lathe("quantize", f32, "--method", "gptq", "--type", "Q4_0", "-o", out);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("--calib");
        // unknown type
        r = MainTest.lathe("quantize", f32, "--type", "Q7_X", "-o", out);
        assertThat(r.code()).isEqualTo(2);
        assertThat(out).doesNotExist();
    }

    @Test
    void imatrixQuantizationWithLlamaCppsImatrixIsByteIdentical() {
        for (String[] c : new String[][]{{"Q4_K_S", "tiny-llama-Q4_K_S-imatrix.gguf"}, {"Q2_K", "tiny-llama-Q2_K-imatrix.gguf"}}) {
            Path out = tmp.resolve(c[0] + "-im.gguf");
            MainTest.Run r = MainTest.lathe("quantize", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--method", "imatrix",
                    "--imatrix", Fixtures.fixture("tiny-llama/gguf/imatrix.dat"), "--type", c[0], "--pure", "-o", out, "--json");
            assertThat(r.code()).as(r.err()).isZero();
            try (GgufFile mine = GgufFile.open(out); GgufFile ref = GgufFile.open(Fixtures.fixture("tiny-llama/gguf/" + c[1]))) {
                for (String n : ref.tensorInfos().keySet()) {
                    Tensor a = ref.tensor(n), b = mine.tensor(n);
                    assertThat(b.type()).as(n).isEqualTo(a.type());
                    assertThat(b.data().mismatch(a.data())).as(c[0] + " " + n).isEqualTo(-1L);
                }
                assertThat(mine.getLong("quantize.imatrix.chunks_count", -1)).isEqualTo(161);
            }
        }
    }

    @Test
    void intGptqAndAwqWriteCompressedTensorsThatLoadAndEvaluate() {
        Path calib = Fixtures.data("text/train/austen-emma.txt");
        int[] ids = MainTest.readIds(Fixtures.fixture("tiny-llama/tokens/moby-16k.ids.i32le.bin"));
        for (String method : new String[]{"gptq", "awq+gptq"}) {
            Path out = tmp.resolve("int4-" + method.replace('+', '-'));
            MainTest.Run r = MainTest.lathe("quantize", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--method", method,
                    "--type", "int4-g128", "--calib", calib, "--samples", 8, "--seq-len", 128, "--awq-grid", 5, "-o", out, "--json");
            assertThat(r.code()).as(r.err()).isZero();
            assertThat(r.json().get("format").asText()).isEqualTo("compressed-tensors");
            assertThat(r.json().get("bpw").asDouble()).isBetween(4.0, 4.5);
            // the folder made from a GGUF has no tokenizer.json: score the fixture's llama.cpp token ids
            double ppl;
            try (dev.lathe.model.WeightSource src = dev.lathe.io.ModelLoader.open(out)) {
                dev.lathe.model.LlamaModel m = dev.lathe.model.LlamaModel.load(src);
                assertThat(m.layer(1).down()).isInstanceOf(dev.lathe.model.PackedIntLinear.class);
                ppl = dev.lathe.eval.Perplexity.compute(m, ids, new dev.lathe.eval.Perplexity.Options(128, 1, -1, 20)).ppl();
            }
            System.out.printf("int4-g128 %s: PPL (20 chunks) %.4f%n", method, ppl);
            assertThat(ppl).isBetween(200.0, 320.0);
        }
    }

    @Test
    void nanWeightsAreRejectedWithoutOutput() {
        Path f32 = Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
        Path bad = tmp.resolve("nan.gguf");
        try (GgufFile g = GgufFile.open(f32)) {
            dev.lathe.io.gguf.GgufWriter w = new dev.lathe.io.gguf.GgufWriter();
            g.metadata().forEach(w::set);
            for (String n : g.tensorInfos().keySet()) {
                Tensor t = g.tensor(n);
                if (n.equals("blk.1.ffn_up.weight")) {
                    w.addTensor(n, t.type(), t.shape(), out -> {
                        float[] v = dev.lathe.tensor.TensorOps.toFloats(t);
                        v[1234] = Float.NaN;
                        for (float x : v) out.f32(x);
                    });
                } else {
                    w.addTensor(t);
                }
            }
            w.write(bad);
        }
        Path out = tmp.resolve("out.gguf");
        MainTest.Run r = MainTest.lathe("quantize", bad, "--type", "Q4_0", "-o", out);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("blk.1.ffn_up.weight").contains("NaN");
        assertThat(out).doesNotExist();
    }

    @Test
    void rtnPureTypesAreByteIdenticalToLlamaQuantize() {
        String[][] cases = {{"Q8_0", "Q8_0"}, {"Q4_0", "Q4_0"}, {"Q4_1", "Q4_1"}, {"Q5_0", "Q5_0"}, {"Q5_1", "Q5_1"}, {"Q2_K", "Q2_K"},
                {"Q3_K_S", "Q3_K_S"}, {"Q5_K_S", "Q5_K_S"}, {"Q6_K", "Q6_K"}, {"IQ4_NL", "IQ4_NL"}};
        for (String[] c : cases) {
            Path out = tmp.resolve(c[0] + ".gguf");
            MainTest.Run r = MainTest.lathe("quantize", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--type", c[0], "--pure", "-o", out, "--json");
            assertThat(r.code()).as(r.err()).isZero();
            try (GgufFile mine = GgufFile.open(out); GgufFile ref = GgufFile.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-" + c[1] + ".gguf"))) {
                for (String n : ref.tensorInfos().keySet()) {
                    Tensor a = ref.tensor(n), b = mine.tensor(n);
                    assertThat(b.type()).as(c[0] + " " + n).isEqualTo(a.type());
                    assertThat(b.data().mismatch(a.data())).as(c[0] + " " + n).isEqualTo(-1L);
                }
                assertThat(mine.getLong("general.file_type", -1)).isEqualTo(ref.getLong("general.file_type", -2));
            }
        }
    }

    @Test
    void calibratedImatrixAndAwqOnGgufTypesRun() {
        Path calib = Fixtures.data("text/train/austen-emma.txt");
        for (String method : new String[]{"imatrix", "awq"}) {
            Path out = tmp.resolve(method + ".gguf");
            MainTest.Run r = MainTest.lathe("quantize", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--method", method,
                    "--type", "Q3_K_M", "--calib", calib, "--samples", 4, "--seq-len", 64, "--awq-grid", 4, "-o", out, "--json");
            assertThat(r.code()).as(r.err()).isZero();
            assertThat(r.json().get("calibration_tokens").asInt()).isEqualTo(256);
            MainTest.Run e = MainTest.lathe("eval", out, "--text", Fixtures.fixture("text/moby-16k.txt"), "--ctx", 128, "--chunks", 10, "--json");
            assertThat(e.code()).as(e.err()).isZero();
            assertThat(e.json().get("ppl").asDouble()).isBetween(200.0, 320.0);
        }
    }
}
