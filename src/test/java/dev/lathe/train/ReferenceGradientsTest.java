package dev.lathe.train;

import dev.lathe.Fixtures;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.model.TensorNames;
import dev.lathe.tensor.TensorOps;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** Loss and every parameter gradient against PyTorch (float64 autograd) on the tiny fixture models. */
class ReferenceGradientsTest {

    @Test
    void tinyLlamaLossAndGradientsMatchPyTorch() {
        check("tiny-llama", false);
    }

    @Test
    void tinyQwen2LossAndGradientsMatchPyTorchWithBiasesAndTiedEmbeddings() {
        check("tiny-qwen2", false);
    }

    @Test
    void activationCheckpointingGivesTheSameGradients() {
        check("tiny-llama", true);
    }

    @Test
    void ggufLayoutWithInterleavedRopeGivesTheSameLossAndGradients() {
        try (GgufWeightSource g = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"));
             SafetensorsFile fwd = SafetensorsFile.open(Fixtures.fixture("tiny-llama/expected/forward.safetensors"));
             SafetensorsFile grads = SafetensorsFile.open(Fixtures.fixture("tiny-llama/expected/grads.safetensors"))) {
            assertThat(g.config().ropeStyle()).isEqualTo(dev.lathe.model.RopeStyle.INTERLEAVED);
            TrainModel m = TrainModel.load(g);
            int[] tokens = TensorOps.toInts(fwd.tensor("tokens"));
            int[] targets = new int[tokens.length];
            for (int i = 0; i < tokens.length - 1; i++) targets[i] = tokens[i + 1];
            targets[tokens.length - 1] = CrossEntropyLoss.DEFAULT_IGNORE_INDEX;
            m.zeroGrad();
            double loss = m.forwardBackward(tokens, targets, 1, tokens.length, new CrossEntropyLoss(), 1f / (tokens.length - 1)) / (tokens.length - 1);
            assertThat(loss).isCloseTo(fwd.floats("loss")[0], org.assertj.core.data.Offset.offset(1e-5));
            // un-permuted tensors keep HF gradients
            float[] exp = grads.floats("grad.model.layers.1.mlp.down_proj.weight");
            float[] got = m.param("blk.1.ffn_down.weight").grad();
            double max = 0, err = 0;
            for (int i = 0; i < exp.length; i++) {
                max = Math.max(max, Math.abs(exp[i]));
                err = Math.max(err, Math.abs(exp[i] - got[i]));
            }
            assertThat(err / max).isLessThan(1e-4);
        }
    }

    private static void check(String model, boolean checkpoint) {
        try (HfWeightSource src = HfWeightSource.open(Fixtures.fixture(model + "/hf"));
             SafetensorsFile fwd = SafetensorsFile.open(Fixtures.fixture(model + "/expected/forward.safetensors"));
             SafetensorsFile grads = SafetensorsFile.open(Fixtures.fixture(model + "/expected/grads.safetensors"))) {
            TrainModel m = TrainModel.load(src);
            m.setCheckpointActivations(checkpoint);
            int[] tokens = TensorOps.toInts(fwd.tensor("tokens"));
            int t = tokens.length;
            int[] targets = new int[t];
            for (int i = 0; i < t - 1; i++) targets[i] = tokens[i + 1];
            targets[t - 1] = CrossEntropyLoss.DEFAULT_IGNORE_INDEX;
            Loss ce = new CrossEntropyLoss();
            int count = ce.count(targets, t);
            assertThat(count).isEqualTo(t - 1);
            m.zeroGrad();
            double loss = m.forwardBackward(tokens, targets, 1, t, ce, 1f / count) / count;
            float expectedLoss = fwd.floats("loss")[0];
            assertThat(loss).isCloseTo(expectedLoss, org.assertj.core.data.Offset.offset(1e-5));

            int checked = 0;
            for (TrainModel.Param p : m.params()) {
                String hf = src.hfName(p.name());
                float[] exp = grads.floats("grad." + hf);
                assertThat(exp.length).isEqualTo(p.size());
                double maxAbs = 0, maxErr = 0;
                for (int i = 0; i < exp.length; i++) {
                    maxAbs = Math.max(maxAbs, Math.abs(exp[i]));
                    maxErr = Math.max(maxErr, Math.abs(exp[i] - p.grad()[i]));
                }
                assertThat(maxAbs).as(hf).isGreaterThan(0);
                assertThat(maxErr / maxAbs).as("relative gradient error of " + hf).isLessThan(1e-4);
                checked++;
            }
            assertThat(checked).isEqualTo(grads.entries().size());
            if (src.config().tiedEmbeddings()) assertThat(src.has(TensorNames.OUTPUT)).isFalse();
        }
    }
}
