package dev.lathe.io;

import dev.lathe.Fixtures;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.TensorOps;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class ReadersTest {

    @Test
    void ggufMetadataAndTensorsOfTinyLlama() {
        try (GgufFile f = GgufFile.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            assertThat(f.version()).isEqualTo(3);
            assertThat(f.metadata()).hasSize(26);
            assertThat(f.getString("general.architecture", null)).isEqualTo("llama");
            assertThat(f.getArray("tokenizer.ggml.tokens", String[].class)).hasSize(259);
            assertThat(f.tensorInfos()).hasSize(21);
            assertThat(f.tensor("blk.0.attn_k.weight").shape()).containsExactly(128, 256);
            assertThat(f.tensor("token_embd.weight").type()).isEqualTo(GgmlType.F32);
        }
    }

    @Test
    void hfAndGgufAgreeUpToTheRopePermutation() {
        try (GgufWeightSource g = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"));
             HfWeightSource h = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            ModelConfig gc = g.config(), hc = h.config();
            assertThat(gc.ropeStyle()).isEqualTo(RopeStyle.INTERLEAVED);
            assertThat(hc.ropeStyle()).isEqualTo(RopeStyle.HALF);
            assertThat(gc.withRopeStyle(RopeStyle.HALF)).isEqualTo(hc);
            assertThat(h.tensorNames()).containsExactlyInAnyOrderElementsOf(g.tensorNames());
            float[] hv = TensorOps.toFloats(h.tensor("blk.1.ffn_down.weight"));
            float[] gv = TensorOps.toFloats(g.tensor("blk.1.ffn_down.weight"));
            assertThat(gv).containsExactly(hv);
            // q rows: GGUF row 2i of a head = HF row i, row 2i+1 = HF row i + d/2
            float[] hq = TensorOps.toFloats(h.tensor("blk.0.attn_q.weight"));
            float[] gq = TensorOps.toFloats(g.tensor("blk.0.attn_q.weight"));
            int d = 32, in = 256;
            for (int head = 0; head < 8; head++) {
                for (int i = 0; i < d / 2; i++) {
                    for (int c = 0; c < in; c += 37) {
                        assertThat(gq[((head * d) + 2 * i) * in + c]).isEqualTo(hq[((head * d) + i) * in + c]);
                        assertThat(gq[((head * d) + 2 * i + 1) * in + c]).isEqualTo(hq[((head * d) + i + d / 2) * in + c]);
                    }
                }
            }
        }
    }

    @Test
    void bf16CheckpointWidensExactly() {
        try (HfWeightSource h = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf/model.bf16.safetensors"));
             HfWeightSource f = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            assertThat(h.tensor("output.weight").type()).isEqualTo(GgmlType.BF16);
            float[] b = TensorOps.toFloats(h.tensor("output.weight"));
            float[] x = TensorOps.toFloats(f.tensor("output.weight"));
            for (int i = 0; i < b.length; i++) assertThat(Math.abs(b[i] - x[i])).isLessThanOrEqualTo(Math.abs(x[i]) / 128f);
        }
    }
}
