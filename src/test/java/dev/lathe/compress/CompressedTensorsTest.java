package dev.lathe.compress;

import dev.lathe.Fixtures;
import dev.lathe.io.ModelLoader;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.Parallel;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.TensorOps;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class CompressedTensorsTest {
    @TempDir
    Path tmp;

    @Test
    void packUnpackRoundTripsEveryBitWidth() {
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(5);
        for (int bits = 2; bits <= 8; bits++) {
            int n = 77;
            int[] v = new int[n];
            for (int i = 0; i < n; i++) v[i] = rnd.nextInt(-(1 << (bits - 1)), 1 << (bits - 1));
            int[] words = new int[dev.lathe.model.PackedIntLinear.wordsFor(n, bits)];
            dev.lathe.model.PackedIntLinear.pack(v, 0, n, bits, words, 0);
            int[] back = new int[n];
            dev.lathe.model.PackedIntLinear.unpack(words, 0, n, bits, back, 0);
            assertArrayEquals(v, back, "bits " + bits);
        }
        // compressed-tensors' layout for 4 bits: value i of a word at bits 4i, offset by 8
        int[] w = new int[1];
        dev.lathe.model.PackedIntLinear.pack(new int[]{-8, 7, 0, 1, 0, 0, 0, 0}, 0, 8, 4, w, 0);
        assertEquals(0x888898F0, w[0]);
    }

    @Test
    void quantizedFolderLoadsAsPackedIntegersWithTheSameWeights() {
        Path model = Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
        for (String type : new String[]{"int4-g128", "int3-g32-asym", "int8"}) {
            Path out = tmp.resolve(type);
            QuantizeJob.Summary s = QuantizeJob.run(model, out, new QuantizeJob.Options(QuantizeJob.Method.RTN, type, false, List.of(), 1, 2, 0,
                    null, Gptq.Options.DEFAULT, 10), Calibrator.Listener.NONE);
            assertEquals("compressed-tensors", s.format());
            assertTrue(Files.isRegularFile(out.resolve("config.json")));
            try (WeightSource orig = ModelLoader.open(model); WeightSource q = ModelLoader.open(out)) {
                ModelLoader.checkTensors(q);
                WeightFormat f = WeightFormat.parse(type);
                var c = orig.config();
                for (Proj p : new Proj[]{Proj.Q, Proj.DOWN}) {
                    String n = p.tensorName(1);
                    var t = orig.tensor(n);
                    int rows = (int) t.rows(), cols = (int) t.cols();
                    float[] expect = Grid.of(f, n, rows, cols, null).roundToNearest(TensorOps.toFloats(t), Parallel.common());
                    float[] got = TensorOps.toFloats(q.tensor(n));
                    for (int r = 0; r < rows; r++) {
                        int src = p == Proj.Q ? CompressedTensors.halfFromInterleaved(r, c.headDim()) : r;
                        for (int j = 0; j < cols; j++) assertEquals(expect[src * cols + j], got[r * cols + j], 0f, type + " " + n);
                    }
                    assertEquals(f.toString(), q.linear(n, Parallel.common()).typeName(), type);
                }
                LlamaModel m = LlamaModel.load(q);
                assertTrue(m.layer(0).wq() instanceof dev.lathe.model.PackedIntLinear);
                int[] ids = {1, 70, 75, 68, 83, 87, 72, 85, 35, 44};
                float[] a = m.forward(m.newSession(16), ids, 0, ids.length, true);
                // the same decoded weights run densely: the packed kernel must give the same logits
                WeightSource dense = new WeightSource() {
                    public Path path() { return q.path(); }
                    public dev.lathe.model.ModelConfig config() { return q.config(); }
                    public java.util.Set<String> tensorNames() { return q.tensorNames(); }
                    public dev.lathe.tensor.Tensor tensor(String name) { return q.tensor(name); }
                    public void close() {}
                };
                LlamaModel ref = LlamaModel.load(dense);
                assertTrue(ref.layer(0).wq() instanceof dev.lathe.model.DenseLinear);
                float[] b = ref.forward(ref.newSession(16), ids, 0, ids.length, true);
                LlamaModel f32 = LlamaModel.load(orig);
                float[] o = f32.forward(f32.newSession(16), ids, 0, ids.length, true);
                double diff = 0, moved = 0;
                for (int i = 0; i < a.length; i++) {
                    assertTrue(Float.isFinite(a[i]));
                    diff = Math.max(diff, Math.abs(a[i] - b[i]));
                    moved = Math.max(moved, Math.abs(a[i] - o[i]));
                }
                System.out.printf("%s: packed vs dense-decoded logits %.2g, vs F32 model %.4f, %d bytes%n", type, diff, moved, s.bytes());
                assertTrue(diff < 1e-4, type + " packed kernel differs by " + diff);
                assertTrue(moved > 0 && moved < 1, type + " quantization moved logits by " + moved);
            }
        }
    }
}
