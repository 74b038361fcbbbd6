package dev.lathe.prune;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.eval.Perplexity;
import dev.lathe.io.Converter;
import dev.lathe.io.ModelLoader;
import dev.lathe.io.Progress;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.Linear;
import dev.lathe.model.Parallel;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PruneModelTest {
    static final Parallel POOL = new Parallel(2);
    static final int[] PROMPT = {1, 45, 200, 7, 99, 13, 250, 3, 64};

    @AfterAll
    static void close() {
        POOL.close();
    }

    static float[] logits(LlamaModel m) {
        LlamaModel.Session s = m.newSession(16);
        return m.forward(s, PROMPT, 0, PROMPT.length, true);
    }

    static void assertClose(float[] a, float[] b, float tol) {
        assertEquals(a.length, b.length);
        for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], tol * (1 + Math.abs(a[i])), "logit " + i);
    }

    static int[] mobyIds() throws IOException {
        byte[] b = Files.readAllBytes(Fixtures.fixture("tiny-llama/tokens/moby-16k.ids.i32le.bin"));
        int[] ids = new int[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(ids);
        return ids;
    }

    @Test
    void bitmaskFileRoundTripsAndGivesTheDenseLogits(@TempDir Path dir) {
        try (HfWeightSource src = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            ModelPruner.Result r = ModelPruner.prune(src, ModelPruner.Options.magnitude(Pattern.unstructured(0.6)), Progress.NONE);
            assertEquals(14, r.stats().size());
            for (ModelPruner.TensorStat s : r.stats()) assertEquals(0.6, s.sparsity(), 1.0 / (s.rows() * s.cols()) + 1e-12, s.name());
            float[] dense = logits(LlamaModel.load(r.source(), POOL));
            Path out = dir.resolve("sparse");
            SparseSafetensors.write(r.source(), out, SparseSafetensors.Format.BITMASK, GgmlType.F32, "unstructured", Progress.NONE);
            assertEquals(SparseSafetensors.BITMASK, SparseSource.sparseFormat(out));
            try (SparseSource sp = SparseSource.open(out, SparseSource.Kernels.SPARSE)) {
                assertTrue(sp.runsSparse(), sp.kernelsReason());
                for (String n : r.source().prunedNames()) {
                    SparseMatrix m = sp.sparse(n).orElseThrow();
                    float[] want = r.source().weights(n);
                    assertTrue(java.util.Arrays.equals(want, m.toDense()), n);
                }
                LlamaModel m = sp.load(POOL);
                Linear q = m.layer(0).wq();
                assertTrue(q instanceof SparseLinear, q.getClass().toString());
                assertClose(dense, logits(m), 1e-4f);
                // the dense view of the same file gives the same model too
                assertClose(dense, logits(LlamaModel.load(sp, POOL)), 1e-4f);
            }
            // the same file on the dense kernels: the compressed matrices expanded exactly, the same logits
            try (SparseSource sp = SparseSource.open(out, SparseSource.Kernels.DENSE)) {
                assertFalse(sp.runsSparse());
                LlamaModel m = sp.load(POOL);
                assertFalse(m.layer(0).wq() instanceof SparseLinear, m.layer(0).wq().getClass().toString());
                assertEquals(GgmlType.F32.name(), m.layer(0).wq().typeName());
                assertClose(dense, logits(m), 1e-5f);
            }
            // auto: this model's matrices (a few hundred KB dense) fit in any last-level cache, so the dense kernels run
            try (SparseSource sp = SparseSource.open(out)) {
                assertTrue(sp.denseMatrixBytes() < dev.lathe.model.CpuCache.lastLevelBytes(), sp.kernelsReason());
                assertFalse(sp.runsSparse(), sp.kernelsReason());
                assertTrue(sp.kernelsReason().startsWith("dense (auto"), sp.kernelsReason());
            }
            long denseBytes;
            Path d = dir.resolve("dense");
            SparseSafetensors.write(r.source(), d, SparseSafetensors.Format.DENSE, GgmlType.F32, "unstructured", Progress.NONE);
            denseBytes = SparseSafetensors.folderBytes(d);
            assertTrue(SparseSafetensors.folderBytes(out) < denseBytes * 0.8, "sparse folder is smaller");
            try (WeightSource back = ModelLoader.open(d)) {
                assertClose(dense, logits(LlamaModel.load(back, POOL)), 1e-5f);
            }
        }
    }

    /**
     * Per-matrix pruning is lazy: nothing is held, each matrix is computed when asked (the same weights each time),
     * the statistics come from those computations, and writers ask for one matrix at a time; the files equal those
     * written from the held weights.
     */
    @Test
    void perMatrixPruningIsComputedWhenWritten(@TempDir Path dir) throws IOException {
        try (HfWeightSource src = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            ModelPruner.Options o = new ModelPruner.Options(ModelPruner.Method.MAGNITUDE, Pattern.unstructured(0.55), ModelPruner.Scope.ROW,
                    false, false, List.of(), Map.of());
            ModelPruner.Result lazy = ModelPruner.prune(src, o, Progress.NONE);
            String q = "blk.0.attn_q.weight";
            assertTrue(lazy.source().computesTensor(q));
            assertFalse(lazy.source().computesTensor("blk.0.attn_norm.weight"));
            float[] a = lazy.source().weights(q), b = lazy.source().weights(q);
            assertTrue(a != b && java.util.Arrays.equals(a, b), "computed anew, the same weights");
            // what the pruner does to the stored matrix, by hand
            float[] want = dev.lathe.tensor.TensorOps.toFloats(src.tensor(q));
            int rows = (int) src.tensor(q).rows(), cols = (int) src.tensor(q).cols();
            Pruner.prune(want, Pruner.magnitudeScores(want), rows, cols, Pattern.unstructured(0.55), Pruner.Scope.ROW);
            assertTrue(java.util.Arrays.equals(want, a));
            Map<String, float[]> held = new java.util.LinkedHashMap<>();
            long zeros = 0;
            for (String n : lazy.source().prunedNames()) {
                float[] w = lazy.source().weights(n);
                held.put(n, w);
                for (float v : w) if (v == 0f) zeros++;
            }
            assertEquals(zeros, lazy.zeros());
            ModelPruner.PrunedSource eager = PrunedWeights.of(src, held);
            assertFalse(eager.computesTensor(q));
            Path g1 = dir.resolve("lazy.gguf"), g2 = dir.resolve("held.gguf");
            Converter.toGguf(lazy.source(), g1, GgmlType.F16, Progress.NONE);
            Converter.toGguf(eager, g2, GgmlType.F16, Progress.NONE);
            assertTrue(java.util.Arrays.equals(Files.readAllBytes(g1), Files.readAllBytes(g2)), "same GGUF bytes");
            Path f1 = dir.resolve("lazy"), f2 = dir.resolve("held");
            SparseSafetensors.write(lazy.source(), f1, SparseSafetensors.Format.BITMASK, GgmlType.F16, "unstructured", Progress.NONE);
            SparseSafetensors.write(eager, f2, SparseSafetensors.Format.BITMASK, GgmlType.F16, "unstructured", Progress.NONE);
            assertTrue(java.util.Arrays.equals(Files.readAllBytes(f1.resolve("model.safetensors")), Files.readAllBytes(f2.resolve("model.safetensors"))),
                    "same sparse folder");
        }
    }

    @Test
    void aNonFiniteWeightFoundWhileWritingLeavesNothingBehind(@TempDir Path dir) throws IOException {
        try (HfWeightSource src = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            Map<String, dev.lathe.tensor.Tensor> m = new HashMap<>();
            for (String n : src.tensorNames()) m.put(n, src.tensor(n));
            String bad = "blk.1.ffn_up.weight";
            float[] w = dev.lathe.tensor.TensorOps.toFloats(src.tensor(bad));
            w[17] = Float.POSITIVE_INFINITY;
            m.put(bad, dev.lathe.tensor.TensorOps.ofFloats(bad, src.tensor(bad).shape(), w));
            WeightSource withInf = new dev.lathe.model.TensorMapSource(src.path(), src.config(), m, () -> {});
            ModelPruner.Result r = ModelPruner.prune(withInf, ModelPruner.Options.magnitude(Pattern.unstructured(0.5)), Progress.NONE);
            Path out = dir.resolve("p.gguf"), folder = dir.resolve("p");
            LatheException e = assertThrows(LatheException.class, () -> Converter.toGguf(r.source(), out, GgmlType.F16, Progress.NONE));
            assertTrue(e.getMessage().contains(bad) && e.getMessage().contains("non-finite"), e.getMessage());
            assertThrows(LatheException.class, () -> SparseSafetensors.write(r.source(), folder, SparseSafetensors.Format.BITMASK, GgmlType.F16,
                    "unstructured", Progress.NONE));
            assertTrue(!Files.exists(out) && !Files.exists(folder), "nothing half-written");
            try (var s = Files.list(dir)) {
                assertEquals(0, s.count(), "no temp files left");
            }
        }
    }

    @Test
    void twoFourFileRoundTripsF16AndGguf(@TempDir Path dir) {
        try (HfWeightSource src = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            ModelPruner.Options o = new ModelPruner.Options(ModelPruner.Method.MAGNITUDE, Pattern.nm(2, 4), ModelPruner.Scope.ROW, false, false, List.of(), Map.of());
            ModelPruner.Result r = ModelPruner.prune(src, o, Progress.NONE);
            for (String n : r.source().prunedNames()) {
                assertTrue(Pruner.satisfiesNm(r.source().weights(n), (int) src.tensor(n).cols(), 2, 4), n);
            }
            assertEquals(0.5, r.sparsity(), 1e-3);
            Path out = dir.resolve("s24");
            SparseSafetensors.write(r.source(), out, SparseSafetensors.Format.NM, GgmlType.F16, "2:4", Progress.NONE);
            assertEquals(SparseSafetensors.SPARSE24, SparseSource.sparseFormat(out));
            Path d16 = dir.resolve("d16");
            SparseSafetensors.write(r.source(), d16, SparseSafetensors.Format.DENSE, GgmlType.F16, "2:4", Progress.NONE);
            try (SparseSource sp = SparseSource.open(out, SparseSource.Kernels.SPARSE); WeightSource dense16 = ModelLoader.open(d16);
                 SparseSource spd = SparseSource.open(out, SparseSource.Kernels.DENSE)) {
                assertEquals(ValueType.F16, sp.sparse("blk.1.ffn_down.weight").orElseThrow().valueType());
                float[] want = logits(LlamaModel.load(dense16, POOL));
                assertClose(want, logits(sp.load(POOL)), 1e-4f);
                // expanded to F16 exactly: the same layers as the dense F16 export, so the same logits bit for bit
                LlamaModel md = spd.load(POOL);
                assertEquals("F16", md.layer(1).down().typeName());
                assertTrue(java.util.Arrays.equals(want, logits(md)), "dense kernels on the expanded F16 matrices = the dense F16 export");
            }
            Path gguf = dir.resolve("p.gguf");
            Converter.toGguf(r.source(), gguf, GgmlType.F32, Progress.NONE);
            try (WeightSource g = ModelLoader.open(gguf)) {
                float[] want = logits(LlamaModel.load(r.source(), POOL));
                assertClose(want, logits(LlamaModel.load(g, POOL)), 1e-4f);
                // the dense-saved pruned file runs on sparse layers when loaded through the sparse factory
                LlamaModel f32 = LlamaModel.load(g, POOL, SparseLinear.factory(0.45, ValueType.F32));
                assertTrue(f32.layer(1).down() instanceof SparseLinear);
                assertFalse(f32.output() instanceof SparseLinear, "the dense head stays dense");
                assertClose(want, logits(f32), 1e-4f);
                LlamaModel q8 = LlamaModel.load(g, POOL, SparseLinear.factory(0.45, ValueType.Q8));
                float[] got = logits(q8);
                double maxDiff = 0;
                for (int i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
                assertTrue(maxDiff < 0.05 && maxDiff > 0, "Q8 values: close, not identical: " + maxDiff);
            }
        }
    }

    @Test
    void denseTensorsStayDenseUnlessAsked() {
        try (HfWeightSource src = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            Pattern p = Pattern.unstructured(0.5);
            LatheException e = assertThrows(LatheException.class, () -> ModelPruner.targets(src,
                    new ModelPruner.Options(ModelPruner.Method.MAGNITUDE, p, ModelPruner.Scope.LAYER, false, false, List.of("token_embd.weight"), Map.of())));
            assertTrue(e.getMessage().contains("token embedding"), e.getMessage());
            e = assertThrows(LatheException.class, () -> ModelPruner.targets(src,
                    new ModelPruner.Options(ModelPruner.Method.MAGNITUDE, p, ModelPruner.Scope.LAYER, true, true, List.of("blk.0.attn_norm.weight"), Map.of())));
            assertTrue(e.getMessage().contains("norm"), e.getMessage());
            List<String> t = ModelPruner.targets(src, new ModelPruner.Options(ModelPruner.Method.MAGNITUDE, p, ModelPruner.Scope.LAYER, true, true, List.of(), Map.of()));
            assertTrue(t.contains("output.weight") && t.contains("token_embd.weight"));
            assertFalse(ModelPruner.targets(src, ModelPruner.Options.magnitude(p)).contains("output.weight"));
            e = assertThrows(LatheException.class, () -> ModelPruner.targets(src,
                    new ModelPruner.Options(ModelPruner.Method.MAGNITUDE, Pattern.nm(2, 5), ModelPruner.Scope.ROW, false, false, List.of(), Map.of())));
            assertTrue(e.getMessage().contains("does not divide"), e.getMessage());
        }
    }

    /** Column norms measured by running the model: each layer's inputs are recorded on the way through. */
    static Map<String, float[]> measureNorms(WeightSource src, int[] tokens) {
        Map<String, double[]> sums = new HashMap<>();
        LlamaModel m = LlamaModel.load(src, POOL, (t, pool) -> {
            Linear inner = dev.lathe.model.Linears.of(t, pool);
            double[] acc = sums.computeIfAbsent(t.name(), k -> new double[(int) t.cols()]);
            return new Linear() {
                public int inFeatures() { return inner.inFeatures(); }
                public int outFeatures() { return inner.outFeatures(); }
                public long storageBytes() { return inner.storageBytes(); }
                public String typeName() { return inner.typeName(); }
                public void forward(float[] x, float[] y, int n) {
                    int in = inner.inFeatures();
                    for (int i = 0; i < n; i++) for (int j = 0; j < in; j++) acc[j] += (double) x[i * in + j] * x[i * in + j];
                    inner.forward(x, y, n);
                }
            };
        });
        m.forward(m.newSession(tokens.length), tokens, 0, tokens.length, false);
        Map<String, float[]> norms = new HashMap<>();
        sums.forEach((k, v) -> norms.put(k, Pruner.columnNorms(v)));
        return norms;
    }

    @Test
    void pruningRaisesPerplexityAndWandaUsesTheNorms() throws IOException {
        int[] ids = mobyIds();
        Perplexity.Options po = new Perplexity.Options(128, 1, -1, 6);
        try (HfWeightSource src = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            double base = Perplexity.compute(LlamaModel.load(src, POOL), ids, po).ppl();
            ModelPruner.Result mag = ModelPruner.prune(src, new ModelPruner.Options(ModelPruner.Method.MAGNITUDE, Pattern.unstructured(0.5),
                    ModelPruner.Scope.LAYER, false, false, List.of(), Map.of()), Progress.NONE);
            double pMag = Perplexity.compute(LlamaModel.load(mag.source(), POOL), ids, po).ppl();
            ModelPruner.Result glob = ModelPruner.prune(src, new ModelPruner.Options(ModelPruner.Method.MAGNITUDE, Pattern.unstructured(0.5),
                    ModelPruner.Scope.GLOBAL, false, false, List.of(), Map.of()), Progress.NONE);
            assertEquals(0.5, glob.sparsity(), 1e-6);
            double pGlob = Perplexity.compute(LlamaModel.load(glob.source(), POOL), ids, po).ppl();
            Map<String, float[]> norms = measureNorms(src, java.util.Arrays.copyOf(ids, 128));
            assertEquals(15, norms.size()); // 14 block matrices and the head
            ModelPruner.Result wanda = ModelPruner.prune(src, new ModelPruner.Options(ModelPruner.Method.WANDA, Pattern.unstructured(0.5),
                    ModelPruner.Scope.ROW, false, false, List.of(), norms), Progress.NONE);
            double pWanda = Perplexity.compute(LlamaModel.load(wanda.source(), POOL), ids, po).ppl();
            ModelPruner.Result m24 = ModelPruner.prune(src, new ModelPruner.Options(ModelPruner.Method.MAGNITUDE, Pattern.nm(2, 4),
                    ModelPruner.Scope.ROW, false, false, List.of(), Map.of()), Progress.NONE);
            double p24 = Perplexity.compute(LlamaModel.load(m24.source(), POOL), ids, po).ppl();
            System.out.printf(java.util.Locale.ROOT, "tiny-llama PPL (6 chunks of 128): dense %.3f, magnitude 50%% per layer %.3f, global %.3f, Wanda 50%% per row %.3f, 2:4 magnitude %.3f%n",
                    base, pMag, pGlob, pWanda, p24);
            assertTrue(pMag > base, "magnitude pruning raised perplexity: " + base + " -> " + pMag);
            // Wanda prunes different weights than magnitude whenever the norms differ between columns
            long differ = 0;
            for (String n : mag.source().prunedNames()) {
                float[] a = mag.source().weights(n), b = wanda.source().weights(n);
                for (int i = 0; i < a.length; i++) if ((a[i] == 0) != (b[i] == 0)) differ++;
            }
            assertTrue(differ > 0);
        }
    }
}
