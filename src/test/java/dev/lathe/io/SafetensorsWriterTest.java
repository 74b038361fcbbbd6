package dev.lathe.io;

import dev.lathe.Fixtures;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.io.safetensors.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

class SafetensorsWriterTest {
    @TempDir
    Path tmp;

    @ParameterizedTest
    @ValueSource(strings = {"tiny-llama/hf/model.safetensors", "tiny-llama/hf/model.bf16.safetensors", "tiny-llama/expected/forward.safetensors",
            "stories260K/expected.safetensors", "tiny-qwen2/hf/model.safetensors"})
    void rewritingAFixtureGivesTheSameBytes(String rel) throws IOException {
        Path src = Fixtures.fixture(rel);
        Path out = tmp.resolve("x.safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(src)) {
            SafetensorsWriter.copyOf(f).write(out);
        }
        assertThat(Files.mismatch(src, out)).isEqualTo(-1L);
    }

    @Test
    void everyDtypeWithMetadataRoundTrips() throws IOException {
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt").metadata("note", "ünïcode");
        String[] dtypes = {"F32", "F16", "BF16", "I8", "U8", "I32"};
        for (int k = 0; k < dtypes.length; k++) {
            String dt = dtypes[k];
            int size = SafetensorsFile.dtypeSize(dt);
            byte[] data = new byte[3 * 5 * size];
            for (int i = 0; i < data.length; i++) data[i] = (byte) (i * 31 + k);
            w.add("t." + dt, dt, new long[]{3, 5}, o -> o.bytes(data));
        }
        w.add("scalar", "F32", new long[]{}, o -> o.f32(2.5f));
        Path out = tmp.resolve("all.safetensors");
        w.write(out);
        byte[] raw = Files.readAllBytes(out);
        long n = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertThat(n % 8).isZero();
        assertThat(new String(raw, 8, (int) n, java.nio.charset.StandardCharsets.UTF_8)).startsWith("{\"__metadata__\":{\"format\":\"pt\",\"note\":\"ünïcode\"}");
        try (SafetensorsFile f = SafetensorsFile.open(out)) {
            assertThat(f.metadata()).containsEntry("note", "ünïcode");
            for (int k = 0; k < dtypes.length; k++) {
                SafetensorsFile.Entry e = f.entry("t." + dtypes[k]);
                assertThat(e.dtype()).isEqualTo(dtypes[k]);
                assertThat(e.shape()).containsExactly(3, 5);
                byte[] got = e.data().toArray(ValueLayout.JAVA_BYTE);
                for (int i = 0; i < got.length; i++) assertThat(got[i]).isEqualTo((byte) (i * 31 + k));
            }
            assertThat(f.floats("scalar")).containsExactly(2.5f);
        }
    }
}
