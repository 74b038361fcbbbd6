package dev.lathe.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lathe.Fixtures;
import dev.lathe.io.safetensors.SafetensorsWriter;
import dev.lathe.prune.SparseSafetensors;
import dev.lathe.prune.SparseSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.assertj.core.api.Assertions.assertThat;

class PruneCommandTest {
    record Run(int code, String out, String err) {
        JsonNode json() {
            try {
                return new ObjectMapper().readTree(out);
            } catch (Exception e) {
                throw new AssertionError(out + err, e);
            }
        }
    }

    static Run lathe(Object... args) {
        StringWriter o = new StringWriter(), e = new StringWriter();
        String[] a = Arrays.stream(args).map(String::valueOf).toArray(String[]::new);
        int code = Main.run(a, new PrintWriter(o, true), new PrintWriter(e, true));
        return new Run(code, o.toString(), e.toString());
    }

    static long files(Path dir) throws Exception {
        try (var s = Files.list(dir)) {
            return s.count();
        }
    }

    @Test
    void prunesToABitmaskFolderAndReportsJson(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("p50");
        Run r = lathe("prune", Fixtures.fixture("tiny-llama/hf"), "--sparsity", "0.5", "-o", out, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("sparsity").asDouble()).isCloseTo(0.5, org.assertj.core.data.Offset.offset(1e-6));
        assertThat(j.get("pruned_tensors").asInt()).isEqualTo(14);
        assertThat(j.get("format").asText()).isEqualTo("bitmask");
        assertThat(j.get("bytes_after").asLong()).isLessThan(j.get("bytes_before").asLong());
        assertThat(j.get("matrix_bytes_sparse").asLong()).isLessThan(j.get("matrix_bytes_dense").asLong());
        assertThat(SparseSource.sparseFormat(out)).isEqualTo(SparseSafetensors.BITMASK);
        // bench says which kernels ran the compressed matrices: auto picks dense for a model this small; either way the
        // weights read per token differ (sparse: the packed values and masks)
        Run auto = lathe("bench", out, "-p", 8, "-n", 2, "-r", 1, "--json");
        assertThat(auto.code()).as(auto.err()).isZero();
        assertThat(auto.json().get("sparse_kernels").asText()).startsWith("dense (auto");
        Run sp = lathe("bench", out, "-p", 8, "-n", 2, "-r", 1, "--sparse-kernels", "sparse", "--json");
        assertThat(sp.code()).as(sp.err()).isZero();
        assertThat(sp.json().get("sparse_kernels").asText()).isEqualTo("sparse (asked)");
        assertThat(sp.json().get("weight_bytes").asLong()).isLessThan(auto.json().get("weight_bytes").asLong());
        Run bad = lathe("eval", out, "--text", Fixtures.fixture("text/moby-16k.txt"), "--sparse-kernels", "fastest");
        assertThat(bad.code()).isEqualTo(2);
        assertThat(bad.err()).contains("--sparse-kernels");
        // the engine's other commands read it through the dense view
        Path p24 = dir.resolve("p24.gguf");
        Run g = lathe("prune", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--pattern", "2:4", "-o", p24, "--json");
        assertThat(g.code()).as(g.err()).isZero();
        assertThat(g.json().get("format").asText()).isEqualTo("gguf-dense");
        assertThat(Files.size(p24)).isGreaterThan(6_000_000L);
    }

    @Test
    void aSparseLayoutIsOnlyKeptWhereItIsSmaller(@TempDir Path dir) throws Exception {
        // 3 % zeros: F32 values + bitmask + row offsets would outgrow the dense matrix, so the matrices stay dense
        Path out = dir.resolve("p3");
        Run r = lathe("prune", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--sparsity", "0.03", "--format", "bitmask", "-o", out, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("matrix_bytes_sparse").asLong()).isEqualTo(j.get("matrix_bytes_dense").asLong());
        assertThat(j.get("matrices_kept_dense").asInt()).isEqualTo(14);
        try (dev.lathe.io.safetensors.SafetensorsFile f = dev.lathe.io.safetensors.SafetensorsFile.open(out.resolve("model.safetensors"))) {
            assertThat(f.entries().keySet()).noneMatch(n -> n.endsWith(".compressed")).contains("model.layers.0.mlp.down_proj.weight");
        }
        JsonNode ignore = new ObjectMapper().readTree(out.resolve("config.json").toFile()).path("quantization_config").path("sparsity_config").path("ignore");
        assertThat(ignore.toString()).contains("model.layers.0.mlp.down_proj");
        // it still loads and computes the same as the dense-format output
        Path dense = dir.resolve("dense");
        assertThat(lathe("prune", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--sparsity", "0.03", "--format", "dense", "-o", dense).code()).isZero();
        Path text = Fixtures.fixture("text/moby-16k.txt");
        double a = lathe("eval", out, "--text", text, "--ctx", 128, "--chunks", 4, "--json").json().get("ppl").asDouble();
        double b = lathe("eval", dense, "--text", text, "--ctx", 128, "--chunks", 4, "--json").json().get("ppl").asDouble();
        assertThat(a).isEqualTo(b);
        // at 50 % the same matrices are stored sparse
        Path half = dir.resolve("p50");
        assertThat(lathe("prune", Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"), "--sparsity", "0.5", "--format", "bitmask", "-o", half).code()).isZero();
        try (dev.lathe.io.safetensors.SafetensorsFile f = dev.lathe.io.safetensors.SafetensorsFile.open(half.resolve("model.safetensors"))) {
            assertThat(f.entries().keySet()).contains("model.layers.0.mlp.down_proj.compressed");
        }
    }

    @Test
    void badInputExitsTwoAndWritesNothing(@TempDir Path dir) throws Exception {
        Path model = Fixtures.fixture("tiny-llama/hf");
        Path out = dir.resolve("o");
        Object[][] bad = {
                {"prune", model, "--sparsity", "1.0", "-o", out},
                {"prune", model, "--sparsity", "-0.1", "-o", out},
                {"prune", model, "--sparsity", "NaN", "-o", out},
                {"prune", model, "--pattern", "2:5", "-o", out},
                {"prune", model, "--pattern", "4:2", "-o", out},
                {"prune", model, "--pattern", "x", "-o", out},
                {"prune", model, "--sparsity", "0.5", "--pattern", "2:4", "-o", out},
                {"prune", model, "--sparsity", "0.5", "--tensors", "token_embd.weight", "-o", out},
                {"prune", model, "--sparsity", "0.5", "--tensors", "blk.0.attn_norm.weight", "--prune-embeddings", "-o", out},
                {"prune", model, "--sparsity", "0.5", "--tensors", "output.weight", "-o", out},
                {"prune", model, "--sparsity", "0.5", "--method", "wanda", "-o", out},
                {"prune", model, "--sparsity", "0.5", "--format", "nm", "-o", out},
                {"prune", dir.resolve("missing"), "--sparsity", "0.5", "-o", out},
        };
        for (Object[] a : bad) {
            Run r = lathe(a);
            assertThat(r.code()).as(Arrays.toString(a) + " -> " + r.err()).isEqualTo(2);
            assertThat(r.err()).startsWith("lathe: ");
            assertThat(r.err().strip().lines().count()).as(r.err()).isEqualTo(1);
            assertThat(files(dir)).as(Arrays.toString(a)).isZero();
        }
        Run r = lathe("prune", model, "--pattern", "2:5", "-o", out);
        assertThat(r.err()).contains("does not divide");
        r = lathe("prune", model, "--sparsity", "0.5", "--tensors", "token_embd.weight", "-o", out);
        assertThat(r.err()).contains("token embedding");
        // a non-empty output folder is refused before any work
        Path full = dir.resolve("full");
        Files.createDirectories(full);
        Files.writeString(full.resolve("keep.txt"), "x");
        r = lathe("prune", model, "--sparsity", "0.5", "-o", full);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("not empty");
        assertThat(files(full)).isEqualTo(1);
    }

    @Test
    void wandaReadsNormsFile(@TempDir Path dir) throws Exception {
        SafetensorsWriter w = new SafetensorsWriter();
        for (int l = 0; l < 2; l++) {
            for (String s : new String[]{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
                int in = s.equals("ffn_down") ? 768 : 256;
                float[] v = new float[in];
                for (int j = 0; j < in; j++) v[j] = 1 + (j % 7);
                w.add("blk." + l + "." + s + ".weight", dev.lathe.tensor.TensorOps.ofFloats("n", new long[]{in}, v));
            }
        }
        Path norms = dir.resolve("norms.safetensors");
        w.write(norms);
        Path out = dir.resolve("w");
        Run r = lathe("prune", Fixtures.fixture("tiny-llama/hf"), "--method", "wanda", "--scope", "row", "--sparsity", "0.6", "--norms", norms, "-o", out, "--json");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.json().get("sparsity").asDouble()).isCloseTo(0.6, org.assertj.core.data.Offset.offset(4e-3)); // floor(0.6 * 256) = 153 per row
        try (SparseSource s = SparseSource.open(out)) {
            assertThat(s.sparse("blk.0.ffn_down.weight")).isPresent();
        }
    }
}
