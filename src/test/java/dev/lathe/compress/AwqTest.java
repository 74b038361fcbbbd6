package dev.lathe.compress;

import dev.lathe.Fixtures;
import dev.lathe.io.ModelLoader;
import dev.lathe.model.LlamaModel;
import dev.lathe.model.Parallel;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.TensorOps;
import dev.lathe.tokenizer.Tokenizers;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class AwqTest {
    @Test
    void foldedModelComputesTheSameLogitsAndAwqLowersTheError() {
        try (WeightSource src = ModelLoader.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            var c = src.config();
            CalibrationData data = CalibrationData.randomWindows(List.of(Fixtures.data("text/train/austen-emma.txt")),
                    Tokenizers.load(src).orElseThrow(), 4, 96, 3);
            QuantPlan plan = QuantPlan.uniform(src, WeightFormat.parse("int3-g32"));
            BlockRunner runner = new BlockRunner(c, LlamaModel.ropeInverseFrequencies(src), false, Parallel.common());
            float[] emb = TensorOps.toFloats(src.tensor("token_embd.weight"));
            List<float[]> xo = new ArrayList<>(), xa = new ArrayList<>();
            for (int[] s : data.samples()) {
                float[] x = new float[s.length * c.dim()];
                for (int t = 0; t < s.length; t++) System.arraycopy(emb, s[t] * c.dim(), x, t * c.dim(), c.dim());
                xo.add(x);
                xa.add(x.clone());
            }
            AwqModifier awq = new AwqModifier(10);
            boolean changed = false;
            for (int l = 0; l < c.nLayers(); l++) {
                BlockWeights orig = BlockWeights.load(src, l), folded = BlockWeights.load(src, l);
                BlockContext ctx = new BlockContext(folded, xo, data.samples(), runner, plan, new LinkedHashMap<>(), Parallel.common(), () -> {});
                var stats = ctx.stats(true);
                awq.applyToBlock(ctx);
                changed |= folded.version() > 1;
                // the folded weights see inputs divided by s: compare on the folded layer's own statistics
                BlockContext fctx = new BlockContext(folded, xo, data.samples(), runner, plan, new LinkedHashMap<>(), Parallel.common(), () -> {});
                var fstats = fctx.stats(true);
                // gate/up is not compared: AWQ's down scaling divides up's rows, which reweights up's own output error
                for (Proj[] group : new Proj[][]{{Proj.Q, Proj.K, Proj.V}, {Proj.DOWN}}) {
                    double ePlain = 0, eAwq = 0;
                    for (Proj p : group) {
                        int rows = orig.rows(p), cols = orig.cols(p);
                        WeightFormat f = plan.format(p.tensorName(l));
                        float[] plain = Grid.of(f, "w", rows, cols, null).roundToNearest(orig.weight(p), Parallel.common());
                        ePlain += Gptq.outputError(orig.weight(p), plain, rows, cols, stats.get(p.input).hessian());
                        float[] q = Grid.of(f, "w", rows, cols, null).roundToNearest(folded.weight(p), Parallel.common());
                        eAwq += Gptq.outputError(folded.weight(p), q, rows, cols, fstats.get(p.input).hessian());
                    }
                    System.out.printf("layer %d %s int3-g32: output error RTN %.5g, AWQ+RTN %.5g%n", l, java.util.Arrays.toString(group), ePlain, eAwq);
                    assertTrue(eAwq <= ePlain * 1.001, "AWQ made " + java.util.Arrays.toString(group) + " worse");
                }
                for (int i = 0; i < xo.size(); i++) {
                    int n = data.samples().get(i).length;
                    runner.forward(orig, xo.get(i), n, null);
                    runner.forward(folded, xa.get(i), n, null);
                }
            }
            assertTrue(changed, "AWQ chose no scaling at all");
            float[] norm = BlockWeights.vector(src, "output_norm.weight", c.dim());
            var head = dev.lathe.model.Linears.of(src.tensor("output.weight"));
            double worst = 0;
            for (int i = 0; i < xo.size(); i++) {
                int n = data.samples().get(i).length;
                float[] ho = new float[n * c.dim()], ha = new float[n * c.dim()];
                BlockRunner.rmsNormRows(xo.get(i), norm, ho, n, c.dim(), c.normEps());
                BlockRunner.rmsNormRows(xa.get(i), norm, ha, n, c.dim(), c.normEps());
                float[] lo = new float[n * c.vocabSize()], la = new float[n * c.vocabSize()];
                head.forward(ho, lo, n);
                head.forward(ha, la, n);
                for (int k = 0; k < lo.length; k++) worst = Math.max(worst, Math.abs(lo[k] - la[k]));
            }
            System.out.println("AWQ folded vs original logits, max abs difference: " + worst);
            assertTrue(worst < 1e-4, "logits differ by " + worst);
        }
    }
}
