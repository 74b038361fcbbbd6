package dev.lathe.prune;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.cli.Main;
import dev.lathe.io.Progress;
import dev.lathe.io.hf.HfWeightSource;
import dev.lathe.io.safetensors.SafetensorsFile;
import dev.lathe.io.safetensors.SafetensorsWriter;
import dev.lathe.tensor.GgmlType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.function.BiFunction;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Corrupt compressed-tensors sparse folders: one clear error naming the file, exit code 2 from the CLI. */
class SparseFolderBadInputTest {
    static final String DOWN = "model.layers.1.mlp.down_proj";

    @TempDir
    static Path dir;
    static Path good, good24;

    @BeforeAll
    static void prune() {
        try (HfWeightSource src = HfWeightSource.open(Fixtures.fixture("tiny-llama/hf"))) {
            ModelPruner.Result r = ModelPruner.prune(src, ModelPruner.Options.magnitude(Pattern.unstructured(0.6)), Progress.NONE);
            good = dir.resolve("good");
            SparseSafetensors.write(r.source(), good, SparseSafetensors.Format.BITMASK, GgmlType.F16, "unstructured", Progress.NONE);
            ModelPruner.Result r24 = ModelPruner.prune(src, new ModelPruner.Options(ModelPruner.Method.MAGNITUDE, Pattern.nm(2, 4),
                    ModelPruner.Scope.ROW, false, false, java.util.List.of(), java.util.Map.of()), Progress.NONE);
            good24 = dir.resolve("good24");
            SparseSafetensors.write(r24.source(), good24, SparseSafetensors.Format.NM, GgmlType.F16, "2:4", Progress.NONE);
        }
    }

    /** A copy of {@code from} whose model.safetensors has each entry's bytes passed through {@code edit} (null drops it). */
    static Path mutate(Path from, String name, BiFunction<String, byte[], byte[]> edit) throws IOException {
        Path out = dir.resolve(name);
        try (Stream<Path> s = Files.list(from)) {
            Files.createDirectories(out);
            for (Path p : s.toList()) if (!p.getFileName().toString().equals("model.safetensors")) Files.copy(p, out.resolve(p.getFileName()));
        }
        try (SafetensorsFile f = SafetensorsFile.open(from.resolve("model.safetensors"))) {
            SafetensorsWriter w = new SafetensorsWriter();
            f.metadata().forEach(w::metadata);
            for (SafetensorsFile.Entry e : f.entries().values().stream().sorted(Comparator.comparing(SafetensorsFile.Entry::name)).toList()) {
                byte[] b = edit.apply(e.name(), e.data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
                if (b == null) continue;
                w.add(e.name(), e.dtype(), e.shape(), o -> o.segment(MemorySegment.ofArray(b)));
            }
            w.write(out.resolve("model.safetensors"));
        }
        return out;
    }

    static void assertRejected(Path folder, String... parts) {
        assertThatThrownBy(() -> SparseSource.open(folder).close())
                .isInstanceOf(LatheException.class)
                .hasMessageContaining(folder.toString())
                .satisfies(e -> {
                    for (String p : parts) assertThat(e.getMessage()).contains(p);
                });
        StringWriter o = new StringWriter(), err = new StringWriter();
        int code = Main.run(new String[]{"bench", folder.toString(), "-p", "4", "-n", "1", "-r", "1"}, new PrintWriter(o, true), new PrintWriter(err, true));
        assertThat(code).as(err.toString()).isEqualTo(2);
        assertThat(err.toString().lines().count()).isEqualTo(1);
    }

    @Test
    void theUnchangedFoldersOpen() throws IOException {
        try (SparseSource s = SparseSource.open(mutate(good, "copy", (n, b) -> b))) {
            assertThat(s.sparse("blk.1.ffn_down.weight")).isPresent();
        }
    }

    @Test
    void aNonFiniteValue() throws IOException {
        assertRejected(mutate(good, "nan", (n, b) -> {
            if (n.equals(DOWN + ".compressed")) ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putShort(6, (short) 0x7e00); // F16 NaN
            return b;
        }), DOWN + ".compressed", "non-finite");
        assertRejected(mutate(good, "inf", (n, b) -> {
            if (n.equals(DOWN + ".compressed")) ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putShort(0, (short) 0xfc00); // -Inf
            return b;
        }), "non-finite");
    }

    @Test
    void aBitmaskThatDisagreesWithTheValuesOrOffsets() throws IOException {
        // one more kept column in row 0: the offsets no longer match, nor does the value count
        assertRejected(mutate(good, "extra-bit", (n, b) -> {
            if (n.equals(DOWN + ".bitmask")) for (int i = 0; i < 8; i++) b[i] = (byte) 0xff;
            return b;
        }), DOWN);
        assertRejected(mutate(good, "offsets", (n, b) -> {
            if (n.equals(DOWN + ".row_offsets")) ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(8, 3);
            return b;
        }), DOWN + ".row_offsets", "row 1");
        assertRejected(mutate(good, "no-offsets", (n, b) -> n.equals(DOWN + ".row_offsets") ? null : b), "missing tensor", DOWN + ".row_offsets");
        assertRejected(mutate(good, "no-values", (n, b) -> n.equals(DOWN + ".compressed") ? null : b), DOWN);
    }

    @Test
    void aTwoFourRowThatKeepsTheWrongCount() throws IOException {
        assertRejected(mutate(good24, "bad24", (n, b) -> {
            if (n.equals(DOWN + ".bitmask")) b[0] = (byte) 0x0f; // four kept in the first group of row 0
            return b;
        }), DOWN + ".bitmask", "2:4");
    }
}
