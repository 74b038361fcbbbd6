package dev.lathe.compress;

import dev.lathe.Fixtures;
import dev.lathe.io.ModelLoader;
import dev.lathe.model.Parallel;
import dev.lathe.model.TensorNames;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.TensorOps;
import dev.lathe.tokenizer.Tokenizers;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.withinPercentage;

class GptqGainTest {
    @Test
    void gainsCoverEveryCandidateAndMatchWhatGptqQuantizeWrites() {
        Path model = Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
        Path text = Fixtures.data("text/train/austen-prideprejudice.txt");
        try (WeightSource src = ModelLoader.open(model)) {
            CalibrationData data = CalibrationData.randomWindows(List.of(text), Tokenizers.load(src).orElseThrow(), 8, 128, 7);
            var cands = MixAllocator.candidates(src, List.of(GgmlType.Q2_K, GgmlType.Q4_K, GgmlType.Q8_0));
            int[] calls = {0};
            Map<String, Map<WeightFormat, GptqGain.Gain>> gains = GptqGain.measure(src, data, cands, Gptq.Options.DEFAULT, true,
                    Parallel.common(), (d, t, s) -> calls[0]++);
            assertThat(gains.keySet()).containsExactlyInAnyOrderElementsOf(cands.keySet());
            assertThat(calls[0]).isEqualTo(cands.size());
            for (var e : gains.entrySet()) {
                assertThat(e.getValue().keySet()).containsExactlyElementsOf(cands.get(e.getKey()));
                for (GptqGain.Gain g : e.getValue().values()) {
                    if (e.getKey().equals(TensorNames.TOKEN_EMBD)) {
                        assertThat(g.ratio()).as("the embedding is always rounded to nearest").isEqualTo(1.0);
                    } else {
                        assertThat(g.rtnError()).as(g.toString()).isPositive();
                        // GPTQ (with importance-weighted scales) lowers the layer-output error it minimises
                        assertThat(g.ratio()).as(g.toString()).isGreaterThan(0).isLessThan(1);
                    }
                }
            }
            // coarser grids gain more in absolute error
            var q = gains.get("blk.0.attn_q.weight");
            assertThat(q.get(new WeightFormat.Gguf(GgmlType.Q2_K)).rtnError()).isGreaterThan(q.get(new WeightFormat.Gguf(GgmlType.Q4_K)).rtnError());

            // block 0's inputs are the embedded samples in both runs, so its GPTQ error is the error of the weights
            // that quantize with GPTQ writes (same data, same options), measured on an independently built Hessian
            QuantPlan plan = QuantPlan.uniform(src, new WeightFormat.Gguf(GgmlType.Q4_K));
            Map<String, QuantizedWeight> res = Calibrator.run(src, data, plan,
                    List.of(new QuantizeModifier(QuantizeModifier.Method.GPTQ, Gptq.Options.DEFAULT, null, null)),
                    Calibrator.Options.defaults(), Calibrator.Listener.NONE);
            BlockWeights bw = BlockWeights.load(src, 0);
            var runner = new BlockRunner(src.config(), dev.lathe.model.LlamaModel.ropeInverseFrequencies(src), false, Parallel.common());
            InputStats st = new InputStats(src.config().dim(), true);
            float[] emb = TensorOps.toFloats(src.tensor(TensorNames.TOKEN_EMBD));
            int dim = src.config().dim();
            for (int[] s : data.samples()) {
                float[] x = new float[s.length * dim];
                for (int t = 0; t < s.length; t++) System.arraycopy(emb, s[t] * dim, x, t * dim, dim);
                runner.forward(bw, x, s.length, (in, a, rows, cols) -> {
                    if (in == Proj.Input.ATTN_IN) st.add(a, rows, Parallel.common());
                });
            }
            String name = "blk.0.attn_q.weight";
            float[] w = bw.weight(Proj.Q);
            double written = Gptq.outputError(w, res.get(name).dequantize(), bw.rows(Proj.Q), bw.cols(Proj.Q), st.hessian());
            assertThat(q.get(new WeightFormat.Gguf(GgmlType.Q4_K)).gptqError()).isCloseTo(written, withinPercentage(1e-6));
        }
    }

    @Test
    void needsCalibrationData() {
        try (WeightSource src = ModelLoader.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            assertThatThrownBy(() -> GptqGain.measure(src, null, MixAllocator.candidates(src, List.of(GgmlType.Q4_K)), Gptq.Options.DEFAULT,
                    true, Parallel.common(), (d, t, s) -> {})).hasMessageContaining("calibration");
        }
    }
}
