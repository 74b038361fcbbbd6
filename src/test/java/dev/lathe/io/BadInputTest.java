package dev.lathe.io;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.io.gguf.GgufValue;
import dev.lathe.io.gguf.GgufValueType;
import dev.lathe.io.gguf.GgufWriter;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.tensor.GgmlType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Every kind of bad input gives a LatheException naming the file and the problem. */
class BadInputTest {
    @TempDir
    Path tmp;

    // layout of the small GGUF below: 0 magic, 4 version, 8 n_tensors, 16 n_kv,
    // 24 key length, 32 "a", 33 value type, 37 u32 value,
    // 41 key length, 49 "s", 50 value type (ARRAY), 54 element type (STRING), 58 count, 66 len, 74 "xy",
    // 76 name length, 84 "t", 85 n_dims, 89 ne0, 97 ne1, 105 type, 109 offset, 117 end of infos
    static final int KEY_LEN = 24, VALUE_TYPE = 33, ARRAY_COUNT = 58, STR_LEN = 66, NE0 = 89, NE1 = 97, TENSOR_TYPE = 105, TENSOR_OFFSET = 109;

    private byte[] smallGguf() throws IOException {
        GgufWriter w = new GgufWriter();
        w.set("a", GgufValue.u32(7));
        w.set("s", GgufValue.array(GgufValueType.STRING, new String[]{"xy"}));
        w.addTensor(dev.lathe.tensor.TensorOps.ofFloats("t", new long[]{2, 4}, new float[8]));
        Path p = tmp.resolve("small.gguf");
        w.write(p);
        byte[] b = Files.readAllBytes(p);
        assertThat(b[32]).isEqualTo((byte) 'a');
        assertThat(b[84]).isEqualTo((byte) 't');
        return b;
    }

    private Path patched(byte[] base, String name, int at, long value, int width) throws IOException {
        byte[] b = base.clone();
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        if (width == 4) bb.putInt(at, (int) value);
        else bb.putLong(at, value);
        Path p = tmp.resolve(name);
        Files.write(p, b);
        return p;
    }

    private static void fails(Path p, String message) {
        assertThatThrownBy(() -> {
            try (GgufFile f = GgufFile.open(p)) {
                f.tensors();
            }
        }).isInstanceOf(LatheException.class).hasMessageContaining(p.toString()).hasMessageContaining(message);
    }

    @Test
    void ggufStructuralErrors() throws IOException {
        byte[] g = smallGguf();
        try (GgufFile f = GgufFile.open(tmp.resolve("small.gguf"))) {
            assertThat(f.tensor("t").shape()).containsExactly(2, 4);
        }
        fails(patched(g, "magic.gguf", 0, 0x46554748, 4), "wrong magic");
        fails(patched(g, "version.gguf", 4, 9, 4), "unsupported GGUF version 9");
        fails(patched(g, "keylen.gguf", KEY_LEN, 1L << 62, 8), "absurd string length");
        fails(patched(g, "strlen.gguf", STR_LEN, 1L << 40, 8), "absurd string length");
        fails(patched(g, "vtype.gguf", VALUE_TYPE, 77, 4), "unknown value type 77");
        fails(patched(g, "count.gguf", ARRAY_COUNT, 1L << 50, 8), "absurd array length");
        fails(patched(g, "ntensors.gguf", 8, 1L << 61, 8), "absurd tensor count");
        fails(patched(g, "nkv.gguf", 16, -1, 8), "absurd metadata count");
        fails(patched(g, "ttype.gguf", TENSOR_TYPE, 99, 4), "unknown type 99");
        fails(patched(g, "offset.gguf", TENSOR_OFFSET, 1 << 20, 8), "runs past the end");
        fails(patched(g, "misaligned.gguf", TENSOR_OFFSET, 4, 8), "misaligned");
        // 2^30 x 2^30 = 2^60 elements
        Path huge = patched(g, "huge1.gguf", NE0, 1L << 30, 8);
        byte[] h = Files.readAllBytes(huge);
        ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN).putLong(NE1, 1L << 30);
        Files.write(huge, h);
        fails(huge, "runs past the end");
        fails(patched(g, "dim.gguf", NE0, 1L << 50, 8), "absurd dimension");
        for (int cut : new int[]{0, 3, 12, 30, 60, 100, 116, g.length - 1}) {
            Path p = tmp.resolve("cut" + cut + ".gguf");
            Files.write(p, Arrays.copyOf(g, cut));
            assertThatThrownBy(() -> GgufFile.open(p).close()).as("cut at %d", cut).isInstanceOf(LatheException.class).hasMessageContaining(p.toString());
        }
    }

    @Test
    void safetensorsStructuralErrors() throws IOException {
        String[][] headers = {
                {"{not json", "invalid JSON header"},
                {"[1,2]", "not a JSON object"},
                {"{\"t\":{\"dtype\":\"F99\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype F99"},
                {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "needs 8 bytes but data_offsets give 4"},
                {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4000]}}", "outside the data buffer"},
                {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1073741824,1073741824,1073741824],\"data_offsets\":[0,4]}}", "absurd shape"},
                {"{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "invalid shape"},
                {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", "malformed header entry"},
        };
        int i = 0;
        for (String[] c : headers) {
            byte[] json = c[0].getBytes(StandardCharsets.UTF_8);
            ByteBuffer b = ByteBuffer.allocate(8 + json.length + 8).order(ByteOrder.LITTLE_ENDIAN);
            b.putLong(json.length).put(json).putLong(0);
            Path p = tmp.resolve("bad" + i++ + ".safetensors");
            Files.write(p, b.array());
            assertThatThrownBy(() -> SafetensorsFile.open(p).close()).as(c[0]).isInstanceOf(LatheException.class)
                    .hasMessageContaining(p.toString()).hasMessageContaining(c[1]);
        }
        byte[] ok = Files.readAllBytes(Fixtures.fixture("tiny-llama/hf/model.safetensors"));
        Path cut = tmp.resolve("cut.safetensors");
        Files.write(cut, Arrays.copyOf(ok, ok.length - 1));
        assertThatThrownBy(() -> SafetensorsFile.open(cut).close()).isInstanceOf(LatheException.class).hasMessageContaining("truncated or corrupt");
        Path head = tmp.resolve("head.safetensors");
        Files.write(head, Arrays.copyOf(ok, 100));
        assertThatThrownBy(() -> SafetensorsFile.open(head).close()).isInstanceOf(LatheException.class).hasMessageContaining("truncated file");
        Path len = tmp.resolve("len.safetensors");
        byte[] l = ok.clone();
        ByteBuffer.wrap(l).order(ByteOrder.LITTLE_ENDIAN).putLong(0, Long.MAX_VALUE);
        Files.write(len, l);
        assertThatThrownBy(() -> SafetensorsFile.open(len).close()).isInstanceOf(LatheException.class).hasMessageContaining("absurd header length");
    }

    @Test
    void invalidJsonInConfigAndIndex() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("hf"));
        Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"llama\", ");
        Files.copy(Fixtures.fixture("tiny-llama/hf/model.safetensors"), dir.resolve("model.safetensors"));
        assertThatThrownBy(() -> ModelLoader.open(dir)).isInstanceOf(LatheException.class)
                .hasMessageContaining(dir.resolve("config.json").toString()).hasMessageContaining("invalid JSON");
        Files.copy(Fixtures.fixture("tiny-llama/hf/config.json"), dir.resolve("config.json"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"weight_map\": {\"a\": ");
        assertThatThrownBy(() -> HfWeightSource.open(dir)).isInstanceOf(LatheException.class)
                .hasMessageContaining("model.safetensors.index.json").hasMessageContaining("invalid JSON");
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"weight_map\": {\"lm_head.weight\": \"../../etc/passwd\"}}");
        assertThatThrownBy(() -> HfWeightSource.open(dir)).isInstanceOf(LatheException.class).hasMessageContaining("is missing");
        Files.delete(dir.resolve("model.safetensors.index.json"));
        Files.writeString(dir.resolve("config.json"), Files.readString(Fixtures.fixture("tiny-llama/hf/config.json")).replace("\"hidden_size\": 256", "\"hidden_size\": 255"));
        assertThatThrownBy(() -> ModelLoader.open(dir)).isInstanceOf(LatheException.class).hasMessageContaining("the config needs [259, 255]");
        Files.writeString(dir.resolve("config.json"), Files.readString(Fixtures.fixture("tiny-llama/hf/config.json")).replace("\"vocab_size\": 259", "\"vocab_size\": 1152921504606846976"));
        assertThatThrownBy(() -> ModelLoader.open(dir)).isInstanceOf(LatheException.class).hasMessageContaining("vocab_size");
    }

    @Test
    void unknownTensorTypesInGgufAreNamed() throws IOException {
        GgufWriter w = new GgufWriter();
        w.addTensor("t", GgmlType.F32, new long[]{4}, o -> { for (int i = 0; i < 4; i++) o.f32(i); });
        Path p = tmp.resolve("t.gguf");
        w.write(p);
        byte[] b = Files.readAllBytes(p);
        // tensor info: 24 name length, 32 "t", 33 n_dims, 37 ne0, 45 type
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(45, 31); // 31: a removed ggml type id
        Files.write(p, b);
        fails(p, "tensor 't' has unknown type 31");
    }
}
