package dev.lathe.io;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.io.hf.HfFolderWriter;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.io.llama2c.Llama2cWeightSource;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.io.safetensors.SafetensorsWriter;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.WeightSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ModelLoaderTest {
    @TempDir
    Path tmp;

    @Test
    void detectsEachFormatByContentNotName() throws IOException {
        Path gguf = tmp.resolve("model.bin");
        Files.copy(Fixtures.fixture("tiny-llama/gguf/tiny-llama-Q4_0.gguf"), gguf);
        Path bin = tmp.resolve("model.gguf");
        Files.copy(Fixtures.fixture("stories260K/stories260K.bin"), bin);
        try (WeightSource a = ModelLoader.open(gguf); WeightSource b = ModelLoader.open(bin);
             WeightSource c = ModelLoader.open(Fixtures.fixture("tiny-llama/hf"));
             WeightSource d = ModelLoader.open(Fixtures.fixture("tiny-llama/hf/model.bf16.safetensors"))) {
            assertThat(a).isInstanceOf(GgufWeightSource.class);
            assertThat(b).isInstanceOf(Llama2cWeightSource.class);
            assertThat(c).isInstanceOf(HfWeightSource.class);
            assertThat(d).isInstanceOf(HfWeightSource.class);
        }
        Path junk = tmp.resolve("junk.gguf");
        byte[] r = new byte[5000];
        new Random(3).nextBytes(r);
        Files.write(junk, r);
        assertThatThrownBy(() -> ModelLoader.open(junk)).isInstanceOf(LatheException.class).hasMessageContaining(junk.toString()).hasMessageContaining("unrecognised model format");
        assertThatThrownBy(() -> ModelLoader.open(tmp.resolve("nothing"))).isInstanceOf(LatheException.class).hasMessageContaining("no such file");
        Path v1 = tmp.resolve("v1.bin");
        byte[] v1bytes = new byte[256];
        java.nio.ByteBuffer.wrap(v1bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(0x616b3432).putInt(1);
        Files.write(v1, v1bytes);
        assertThatThrownBy(() -> ModelLoader.open(v1)).isInstanceOf(LatheException.class).hasMessageContaining("versioned export");
        Path empty = Files.createDirectory(tmp.resolve("empty"));
        assertThatThrownBy(() -> ModelLoader.open(empty)).isInstanceOf(LatheException.class).hasMessageContaining("no config.json");
        Path lone = tmp.resolve("lone/w.safetensors");
        Files.createDirectories(lone.getParent());
        Files.copy(Fixtures.fixture("tiny-llama/hf/model.safetensors"), lone);
        assertThatThrownBy(() -> ModelLoader.open(lone)).isInstanceOf(LatheException.class).hasMessageContaining("needs a config.json");
    }

    /** An HF folder with the fixture's config and the fixture's tensors, one of them replaced or dropped. */
    private Path hfWith(String hfName, long[] shape) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("hf-" + System.nanoTime()));
        Files.copy(Fixtures.fixture("tiny-llama/hf/config.json"), dir.resolve("config.json"));
        try (SafetensorsFile f = SafetensorsFile.open(Fixtures.fixture("tiny-llama/hf/model.safetensors"))) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (SafetensorsFile.Entry e : f.entries().values()) {
                if (e.name().equals(hfName)) {
                    if (shape != null) w.add(hfName, "F32", shape, o -> { for (long i = 0; i < dev.lathe.tensor.Tensor.numElements(shape); i++) o.f32(1); });
                } else {
                    w.add(new SafetensorsWriter.Entry(e.name(), e.dtype(), e.shape(), o -> o.segment(e.data())));
                }
            }
            w.write(dir.resolve("model.safetensors"));
        }
        return dir;
    }

    @Test
    void missingOrMisShapedTensorsFailEarlyWithTheirNames() throws IOException {
        Path mis = hfWith("model.layers.1.input_layernorm.weight", new long[]{255});
        assertThatThrownBy(() -> ModelLoader.open(mis)).isInstanceOf(LatheException.class).hasMessageContaining(mis.toString())
                .hasMessageContaining("tensor 'model.layers.1.input_layernorm.weight' ('blk.1.attn_norm.weight') has shape [255] but the config needs [256]");
        Path missing = hfWith("model.layers.0.mlp.up_proj.weight", null);
        assertThatThrownBy(() -> ModelLoader.open(missing)).isInstanceOf(LatheException.class)
                .hasMessageContaining("missing tensor 'model.layers.0.mlp.up_proj.weight'");
        Path transposed = hfWith("model.layers.0.self_attn.k_proj.weight", new long[]{256, 128});
        assertThatThrownBy(() -> ModelLoader.open(transposed)).isInstanceOf(LatheException.class).hasMessageContaining("[256, 128] but the config needs [128, 256]");
    }

    @Test
    void checkTensorsAcceptsEveryFixtureModel() {
        for (String p : new String[]{"tiny-llama/hf", "tiny-qwen2/hf", "tiny-llama/gguf/tiny-llama-f32.gguf", "tiny-llama/gguf/tiny-llama-Q4_K_M.gguf", "stories260K/stories260K.bin"}) {
            try (WeightSource s = ModelLoader.open(Fixtures.fixture(p))) {
                assertThat(ModelLoader.expectedShapes(s.config()).keySet()).allMatch(s::has);
            }
        }
    }

    @Test
    void writtenConfigJsonReadsBackAsTheSameConfig() throws IOException {
        for (String arch : new String[]{"llama", "mistral", "qwen2"}) {
            TinyModel m = new TinyModel(tmp.resolve(arch), TinyModel.config(arch, RopeStyle.HALF, arch.equals("qwen2"), arch.equals("qwen2")), 11);
            Path dir = tmp.resolve("cfg-" + arch);
            Converter.toHf(m, dir, dev.lathe.tensor.GgmlType.F32, HfFolderWriter.DEFAULT_MAX_SHARD_BYTES, Progress.NONE);
            try (WeightSource s = ModelLoader.open(dir)) {
                assertThat(s.config()).isEqualTo(m.config());
            }
        }
    }
}
