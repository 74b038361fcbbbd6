package dev.lathe.io;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.io.llama2c.Llama2cWeightSource;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.TensorOps;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class Llama2cTest {
    @TempDir
    Path tmp;

    static float[] floatsAt(byte[] file, long floatIndex, int n) {
        ByteBuffer b = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = b.getFloat((int) (28 + 4 * (floatIndex + i)));
        return v;
    }

    @Test
    void stories260KHeaderConfigAndTensorViews() throws IOException {
        Path p = Fixtures.fixture("stories260K/stories260K.bin");
        byte[] raw = Files.readAllBytes(p);
        try (Llama2cWeightSource s = Llama2cWeightSource.open(p)) {
            ModelConfig c = s.config();
            assertThat(c).isEqualTo(new ModelConfig("llama", 64, 5, 8, 4, 8, 172, 512, 1e-5f, 10000f, RopeStyle.INTERLEAVED, null, 512, true, false));
            assertThat(s.has("output.weight")).isFalse();
            assertThat(s.tensorNames()).hasSize(1 + 5 * 9 + 1);
            // token_embedding first, then rms_att of 5 layers: layer 2's attention norm starts at 512*64 + 2*64
            ConverterTest.assertSameFloats("x", TensorOps.toFloats(s.tensor("token_embd.weight")), floatsAt(raw, 0, 512 * 64));
            ConverterTest.assertSameFloats("x", TensorOps.toFloats(s.tensor("blk.2.attn_norm.weight")), floatsAt(raw, 512 * 64 + 2 * 64, 64));
            // wk of layer 1 after wq of 5 layers: [32, 64]
            long wk1 = 512 * 64 + 5 * 64 + 5 * 64 * 64 + 32 * 64;
            assertThat(s.tensor("blk.1.attn_k.weight").shape()).containsExactly(32, 64);
            ConverterTest.assertSameFloats("x", TensorOps.toFloats(s.tensor("blk.1.attn_k.weight")), floatsAt(raw, wk1, 32 * 64));
            // w2 (ffn_down) of layer 4 is [64, 172]; rms_final is just before the freq_cis tables
            assertThat(s.tensor("blk.4.ffn_down.weight").shape()).containsExactly(64, 172);
            long finalNorm = (raw.length - 28) / 4 - 2 * 512 * 4 - 64;
            ConverterTest.assertSameFloats("x", TensorOps.toFloats(s.tensor("output_norm.weight")), floatsAt(raw, finalNorm, 64));
            ModelLoader.checkTensors(s);
        }
    }

    @Test
    void negativeVocabMeansASeparateClassifier() throws IOException {
        TinyModel m = new TinyModel(tmp.resolve("m"), TinyModel.config("llama", RopeStyle.INTERLEAVED, false, false), 7);
        Path bin = tmp.resolve("untied.bin");
        TinyModel.writeLlama2c(m, bin);
        try (WeightSource s = ModelLoader.open(bin)) {
            assertThat(s).isInstanceOf(Llama2cWeightSource.class);
            assertThat(s.config()).isEqualTo(m.config());
            assertThat(s.tensorNames()).containsExactlyElementsOf(m.tensorNames());
            for (String n : m.tensorNames()) ConverterTest.assertSameFloats(n, TensorOps.toFloats(s.tensor(n)), TensorOps.toFloats(m.tensor(n)));
        }
    }

    @Test
    void fileSizeMustMatchTheHeaderExactly() throws IOException {
        byte[] raw = Files.readAllBytes(Fixtures.fixture("stories260K/stories260K.bin"));
        Path shorter = tmp.resolve("short.bin");
        Files.write(shorter, Arrays.copyOf(raw, raw.length - 4));
        assertThatThrownBy(() -> Llama2cWeightSource.open(shorter)).isInstanceOf(LatheException.class)
                .hasMessageContaining(shorter.toString()).hasMessageContaining("implies 1056540 bytes but the file has 1056536").hasMessageContaining("truncated");
        Path longer = tmp.resolve("long.bin");
        Files.write(longer, Arrays.copyOf(raw, raw.length + 4));
        assertThatThrownBy(() -> Llama2cWeightSource.open(longer)).isInstanceOf(LatheException.class).hasMessageContaining("implies 1056540 bytes but the file has 1056544");
        // the loader does not take a wrong-size file for llama2.c
        assertThatThrownBy(() -> ModelLoader.open(longer)).isInstanceOf(LatheException.class).hasMessageContaining("unrecognised model format");
    }

    @Test
    void absurdHeaderValuesAreRejected() throws IOException {
        byte[] raw = Files.readAllBytes(Fixtures.fixture("stories260K/stories260K.bin"));
        int[][] cases = {{0, 1 << 30}, {0, -64}, {2, 0}, {3, 7}, {4, 3}, {4, 16}, {5, Integer.MIN_VALUE}, {6, -1}, {1, Integer.MAX_VALUE}};
        for (int[] c : cases) {
            byte[] b = raw.clone();
            ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(4 * c[0], c[1]);
            Path p = tmp.resolve("bad" + c[0] + ".bin");
            Files.write(p, b);
            assertThatThrownBy(() -> Llama2cWeightSource.open(p)).as("field %d = %d", c[0], c[1]).isInstanceOf(LatheException.class).hasMessageContaining(p.toString());
        }
        Path tiny = tmp.resolve("tiny.bin");
        Files.write(tiny, new byte[12]);
        assertThatThrownBy(() -> Llama2cWeightSource.open(tiny)).isInstanceOf(LatheException.class).hasMessageContaining("only 12 bytes");
    }
}
