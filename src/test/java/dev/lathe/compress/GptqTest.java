package dev.lathe.compress;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.io.ModelLoader;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.Parallel;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.TensorOps;
import dev.lathe.tokenizer.Tokenizers;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class GptqTest {
    static BlockWeights block;
    static Map<Proj.Input, InputStats> stats;

    @BeforeAll
    static void calibrate() {
        Path model = Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
        Path text = Fixtures.data("text/train/austen-prideprejudice.txt");
        try (WeightSource src = ModelLoader.open(model)) {
            CalibrationData data = CalibrationData.randomWindows(List.of(text), Tokenizers.load(src).orElseThrow(), 8, 128, 7);
            block = BlockWeights.load(src, 0);
            BlockRunner runner = new BlockRunner(src.config(), LlamaModel.ropeInverseFrequencies(src), false, Parallel.common());
            stats = new EnumMap<>(Proj.Input.class);
            var c = src.config();
            stats.put(Proj.Input.ATTN_IN, new InputStats(c.dim(), true));
            stats.put(Proj.Input.ATTN_OUT, new InputStats(c.qDim(), true));
            stats.put(Proj.Input.FFN_IN, new InputStats(c.dim(), true));
            stats.put(Proj.Input.FFN_MID, new InputStats(c.ffnDim(), true));
            var emb = src.tensor("token_embd.weight");
            float[] e = TensorOps.toFloats(emb);
            for (int[] s : data.samples()) {
                float[] x = new float[s.length * c.dim()];
                for (int t = 0; t < s.length; t++) System.arraycopy(e, s[t] * c.dim(), x, t * c.dim(), c.dim());
                runner.forward(block, x, s.length, (in, a, rows, cols) -> stats.get(in).add(a, rows, Parallel.common()));
            }
        }
    }

    private static double[] errors(Proj p, String type) {
        float[] w = block.weight(p);
        int rows = block.rows(p), cols = block.cols(p);
        double[] h = stats.get(p.input).hessian();
        WeightFormat f = WeightFormat.parse(type);
        float[] rtn = Grid.of(f, "w", rows, cols, null).roundToNearest(w, Parallel.common());
        float[] gq = Gptq.quantize("w", w, rows, cols, h, Gptq.Options.DEFAULT, Grid.of(f, "w", rows, cols, null), Parallel.common());
        return new double[]{Gptq.outputError(w, rtn, rows, cols, h), Gptq.outputError(w, gq, rows, cols, h)};
    }

    @Test
    void gptqLowersLayerOutputErrorVersusRtn() {
        for (String type : new String[]{"Q4_0", "Q4_K", "int4-g128"}) {
            for (Proj p : new Proj[]{Proj.Q, Proj.DOWN}) {
                double[] e = errors(p, type);
                System.out.printf("%s %s: ||XW^T - XWq^T||^2 RTN %.5g  GPTQ %.5g  (ratio %.3f)%n", type, p, e[0], e[1], e[1] / e[0]);
                assertTrue(e[1] < 0.8 * e[0], type + " " + p + ": GPTQ " + e[1] + " vs RTN " + e[0]);
            }
        }
    }

    @Test
    void gptqGridValuesAreTheStoredValues() {
        float[] w = block.weight(Proj.K);
        int rows = block.rows(Proj.K), cols = block.cols(Proj.K);
        for (String type : new String[]{"Q4_K", "int4-g32-asym", "int8"}) {
            Grid g = Grid.of(WeightFormat.parse(type), "w", rows, cols, null);
            float[] q = Gptq.quantize("w", w, rows, cols, stats.get(Proj.Input.ATTN_IN).hessian(), Gptq.Options.DEFAULT, g, Parallel.common());
            assertArrayEquals(q, g.result().dequantize(), 0f, type);
        }
    }

    @Test
    void actOrderWorksForIntegersAndIsRejectedForBlockTypes() {
        float[] w = block.weight(Proj.DOWN);
        int rows = block.rows(Proj.DOWN), cols = block.cols(Proj.DOWN);
        double[] h = stats.get(Proj.Input.FFN_MID).hessian();
        Gptq.Options act = new Gptq.Options(0.01, 128, true);
        Grid g = Grid.of(WeightFormat.parse("int4-g128"), "w", rows, cols, null);
        float[] q = Gptq.quantize("w", w, rows, cols, h, act, g, Parallel.common());
        assertArrayEquals(q, g.result().dequantize(), 0f);
        float[] rtn = Grid.of(WeightFormat.parse("int4-g128"), "w", rows, cols, null).roundToNearest(w, Parallel.common());
        assertTrue(Gptq.outputError(w, q, rows, cols, h) < Gptq.outputError(w, rtn, rows, cols, h));
        assertThrows(LatheException.class, () -> Gptq.quantize("w", w, rows, cols, h, act, Grid.of(WeightFormat.parse("Q4_0"), "w", rows, cols, null), Parallel.common()));
    }

    @Test
    void upperCholeskyOfInverseFactorsTheInverse() {
        java.util.Random rnd = new java.util.Random(11);
        for (int n : new int[] {1, 7, 64, 65, 200, 301}) {
            // H = X^T X + I from random X: symmetric positive definite, condition number moderate
            int m = n + 20;
            double[] x = new double[m * n];
            for (int i = 0; i < x.length; i++) x[i] = rnd.nextGaussian();
            double[] h = new double[n * n];
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) {
                    double t = 0;
                    for (int r = 0; r < m; r++) t += x[r * n + i] * x[r * n + j];
                    h[i * n + j] = t + (i == j ? 1 : 0);
                }
            }
            double[] u = Gptq.upperCholeskyOfInverse("t", h.clone(), n, 0);
            double maxErr = 0;
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < i; j++) assertEquals(0.0, u[i * n + j], "U is upper triangular");
                assertTrue(u[i * n + i] > 0);
            }
            // (U^T U) H = I
            double[] g = new double[n * n];
            for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) {
                double t = 0;
                for (int k = 0; k <= Math.min(i, j); k++) t += u[k * n + i] * u[k * n + j];
                g[i * n + j] = t;
            }
            for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) {
                double t = 0;
                for (int k = 0; k < n; k++) t += g[i * n + k] * h[k * n + j];
                maxErr = Math.max(maxErr, Math.abs(t - (i == j ? 1 : 0)));
            }
            assertTrue(maxErr < 1e-9, "n=" + n + ": max |U^T U H - I| = " + maxErr);
        }
    }

    @Test
    void singularHessianWithoutDampingIsDampedOrAClearError() {
        int n = 64;
        double[] h = new double[n * n]; // rank one: x = (1, 1, ..., 1)
        for (int i = 0; i < h.length; i++) h[i] = 1;
        float[] w = new float[4 * n];
        for (int i = 0; i < w.length; i++) w[i] = (float) Math.sin(i);
        float[] q = Gptq.quantize("w", w, 4, n, h, new Gptq.Options(0, 128, false), Grid.of(WeightFormat.parse("Q8_0"), "w", 4, n, null), Parallel.common());
        for (float v : q) assertTrue(Float.isFinite(v));
        double[] nan = new double[n * n];
        java.util.Arrays.fill(nan, Double.NaN);
        LatheException e = assertThrows(LatheException.class, () -> Gptq.quantize("w", w, 4, n, nan, Gptq.Options.DEFAULT,
                Grid.of(WeightFormat.parse("Q8_0"), "w", 4, n, null), Parallel.common()));
        assertTrue(e.getMessage().contains("singular"), e.getMessage());
    }
}
