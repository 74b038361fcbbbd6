package dev.lathe.io;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.io.gguf.GgufValue;
import dev.lathe.io.gguf.GgufValueType;
import dev.lathe.io.gguf.GgufWriter;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class GgufWriterTest {
    @TempDir
    Path tmp;

    @ParameterizedTest
    @ValueSource(strings = {"tiny-llama-f32.gguf", "tiny-llama-Q4_0.gguf", "tiny-llama-Q4_K_M.gguf", "tiny-llama-Q2_K-imatrix.gguf"})
    void rewritingAFixtureGivesTheSameBytes(String name) throws IOException {
        Path src = Fixtures.fixture("tiny-llama/gguf/" + name);
        Path out = tmp.resolve(name);
        try (GgufFile f = GgufFile.open(src)) {
            GgufWriter.copyOf(f).write(out);
        }
        assertThat(Files.mismatch(src, out)).isEqualTo(-1L);
        try (var files = Files.list(tmp)) {
            assertThat(files).containsExactly(out); // no temp file left behind
        }
    }

    @Test
    void everyValueTypeRoundTripsAndAlignmentIsHonoured() {
        GgufWriter w = new GgufWriter();
        w.set("general.alignment", GgufValue.u32(64));
        w.set("u8", GgufValue.of(GgufValueType.UINT8, (byte) 200));
        w.set("i8", GgufValue.of(GgufValueType.INT8, (byte) -3));
        w.set("u16", GgufValue.of(GgufValueType.UINT16, (short) 60000));
        w.set("i16", GgufValue.of(GgufValueType.INT16, (short) -300));
        w.set("u32", GgufValue.u32(0xfffffff0));
        w.set("i32", GgufValue.i32(-7));
        w.set("f32", GgufValue.f32(1.5f));
        w.set("bool", GgufValue.bool(true));
        w.set("str", GgufValue.string("héllo ▁"));
        w.set("u64", GgufValue.of(GgufValueType.UINT64, -2L));
        w.set("i64", GgufValue.of(GgufValueType.INT64, -5L));
        w.set("f64", GgufValue.of(GgufValueType.FLOAT64, Math.PI));
        w.set("a.u8", GgufValue.array(GgufValueType.UINT8, new byte[]{1, 2, (byte) 255}));
        w.set("a.bool", GgufValue.array(GgufValueType.BOOL, new boolean[]{true, false}));
        w.set("a.i16", GgufValue.array(GgufValueType.INT16, new short[]{-1, 7}));
        w.set("a.i32", GgufValue.array(GgufValueType.INT32, new int[]{1, -2, 3}));
        w.set("a.f32", GgufValue.array(GgufValueType.FLOAT32, new float[]{0.5f, -0f}));
        w.set("a.u64", GgufValue.array(GgufValueType.UINT64, new long[]{Long.MIN_VALUE}));
        w.set("a.f64", GgufValue.array(GgufValueType.FLOAT64, new double[]{1e300}));
        w.set("a.str", GgufValue.array(GgufValueType.STRING, new String[]{"a", "", "<0x0A>"}));
        w.set("a.arr", GgufValue.array(GgufValueType.ARRAY, new GgufValue[]{
                GgufValue.array(GgufValueType.INT32, new int[]{4, 5}), GgufValue.array(GgufValueType.STRING, new String[]{"x"})}));
        float[] v = {1, 2, 3};
        w.addTensor(dev.lathe.tensor.TensorOps.ofFloats("v", new long[]{3}, v));
        byte[] raw = new byte[2 * 34];
        for (int i = 0; i < raw.length; i++) raw[i] = (byte) (i * 7);
        w.addTensor(new Tensor("q", GgmlType.Q8_0, new long[]{2, 32}, MemorySegment.ofArray(raw)));
        Path out = tmp.resolve("all.gguf");
        w.write(out);
        try (GgufFile f = GgufFile.open(out)) {
            assertThat(f.alignment()).isEqualTo(64);
            assertThat(f.metadata()).containsExactlyEntriesOf(w.metadata());
            assertThat(f.dataStart() % 64).isZero();
            assertThat(f.tensorInfos().get("q").offset()).isEqualTo(64); // 12 bytes of v padded to 64
            assertThat(f.tensor("q").data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)).containsExactly(raw);
            assertThat(dev.lathe.tensor.TensorOps.toFloats(f.tensor("v"))).containsExactly(v);
            assertThat(f.tensor("q").shape()).containsExactly(2, 32);
        }
        // the file ends padded after the last tensor
        assertThat(out.toFile().length() % 64).isZero();
    }

    @Test
    void aTensorProducingTheWrongByteCountFailsAndLeavesNoFile() throws IOException {
        GgufWriter w = new GgufWriter();
        w.addTensor("t", GgmlType.F32, new long[]{4}, o -> o.f32(1));
        Path out = tmp.resolve("bad.gguf");
        assertThatThrownBy(() -> w.write(out)).isInstanceOf(LatheException.class).hasMessageContaining("'t' produced 4 bytes, expected 16");
        try (var files = Files.list(tmp)) {
            assertThat(files).isEmpty();
        }
    }

    @Test
    void aFailedWriteKeepsThePreviousFile() throws IOException {
        Path out = tmp.resolve("keep.gguf");
        new GgufWriter().setU32("v", 1).write(out);
        byte[] before = Files.readAllBytes(out);
        GgufWriter w = new GgufWriter().setU32("v", 2);
        w.addTensor("t", GgmlType.F32, new long[]{1}, o -> { throw new LatheException(out, "source went away"); });
        assertThatThrownBy(() -> w.write(out)).isInstanceOf(LatheException.class).hasMessageContaining("source went away");
        assertThat(Files.readAllBytes(out)).isEqualTo(before);
        try (var files = Files.list(tmp)) {
            assertThat(files).containsExactly(out);
        }
    }

    @Test
    void mismatchedValueTypesAreRejected() {
        GgufWriter w = new GgufWriter();
        assertThatThrownBy(() -> w.set("x", GgufValue.of(GgufValueType.UINT32, 5L))).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> w.set("x", GgufValue.array(GgufValueType.INT32, new float[1]))).isInstanceOf(IllegalArgumentException.class);
    }
}
