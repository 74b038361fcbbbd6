package dev.lathe.io;

import dev.lathe.LatheException;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.TensorOps;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.statistics.Statistics;
import net.jqwik.api.constraints.LongRange;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.Stream;

/**
 * Mutated valid files (random byte flips in the header region, truncation at a random offset, a length or
 * count field overwritten with a random or huge value) either load completely or raise a LatheException;
 * never another exception or an OutOfMemoryError. Seeded and bounded.
 */
class CorruptFilePropertiesTest {
    static Path dir;
    static byte[] gguf, safetensors, config, llama2c;
    static int ggufHeaderEnd, safetensorsHeaderEnd;

    @BeforeContainer
    static void makeValidFiles() throws IOException {
        dir = Files.createTempDirectory("lathe-corrupt");
        TinyModel m = new TinyModel(dir.resolve("m"), TinyModel.config("llama", RopeStyle.HALF, false, false), 5);
        Path g = dir.resolve("valid.gguf");
        dev.lathe.io.gguf.GgufWriter w = Converter.ggufWriter(m, GgmlType.F32, "tiny");
        w.setStrings("tokenizer.ggml.tokens", new String[]{"<unk>", "<s>", "a", "bc"});
        w.setFloats("tokenizer.ggml.scores", new float[]{0, 0, -1, -2});
        w.write(g);
        gguf = Files.readAllBytes(g);
        try (dev.lathe.io.gguf.GgufFile f = dev.lathe.io.gguf.GgufFile.open(g)) {
            ggufHeaderEnd = (int) f.dataStart();
        }
        Path hf = dir.resolve("valid-hf");
        Converter.toHf(m, hf, GgmlType.F32, Long.MAX_VALUE, Progress.NONE);
        safetensors = Files.readAllBytes(hf.resolve("model.safetensors"));
        safetensorsHeaderEnd = 8 + (int) ByteBuffer.wrap(safetensors).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        config = Files.readAllBytes(hf.resolve("config.json"));
        Path bin = dir.resolve("valid.bin");
        TinyModel.writeLlama2c(new TinyModel(dir.resolve("m2"), TinyModel.config("llama", RopeStyle.INTERLEAVED, false, false), 6), bin);
        llama2c = Files.readAllBytes(bin);
        // the unmutated files load
        for (Path p : new Path[]{g, hf, bin}) loadsOrFailsCleanly(p, true);
    }

    @AfterContainer
    static void cleanUp() throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    /** Opens the model and decodes every tensor; a LatheException is fine, anything else fails the property. */
    static String loadsOrFailsCleanly(Path p, boolean mustLoad) {
        try (WeightSource s = ModelLoader.open(p)) {
            for (String n : s.tensorNames()) TensorOps.toFloats(s.tensor(n));
            return "loaded";
        } catch (LatheException e) {
            if (mustLoad) throw e;
            if (!e.getMessage().contains(p.getFileName().toString()) && (e.file() == null || !e.file().startsWith(p.getParent()))) {
                throw new AssertionError("LatheException does not name the file: " + e.getMessage());
            }
            return "LatheException";
        }
    }

    /** Applies one seeded mutation: flips, truncation or a corrupted length/count field. */
    static byte[] mutate(byte[] valid, int headerEnd, long seed) {
        Random r = new Random(seed);
        byte[] b = valid.clone();
        switch (r.nextInt(3)) {
            case 0 -> {
                int flips = 1 + r.nextInt(4);
                for (int i = 0; i < flips; i++) b[r.nextInt(headerEnd)] ^= (byte) (1 << r.nextInt(8));
            }
            case 1 -> b = Arrays.copyOf(b, r.nextInt(b.length));
            default -> {
                int at = r.nextInt(Math.max(1, headerEnd - 8));
                long v = switch (r.nextInt(4)) {
                    case 0 -> r.nextLong();
                    case 1 -> 1L << (20 + r.nextInt(43));
                    case 2 -> -1 - r.nextInt(1000);
                    default -> r.nextInt(4096);
                };
                ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(at, v);
            }
        }
        return b;
    }

    @Property(tries = 200, seed = "20261124")
    void mutatedGguf(@ForAll @LongRange(min = 0, max = Long.MAX_VALUE) long seed) throws IOException {
        Path p = dir.resolve("m.gguf");
        Files.write(p, mutate(gguf, ggufHeaderEnd, seed));
        Statistics.collect(loadsOrFailsCleanly(p, false));
    }

    @Property(tries = 200, seed = "20261125")
    void mutatedSafetensorsAndConfig(@ForAll @LongRange(min = 0, max = Long.MAX_VALUE) long seed) throws IOException {
        Path folder = Files.createDirectories(dir.resolve("hf"));
        boolean mutateConfig = seed % 4 == 0;
        Files.write(folder.resolve("model.safetensors"), mutateConfig ? safetensors : mutate(safetensors, safetensorsHeaderEnd, seed));
        Files.write(folder.resolve("config.json"), mutateConfig ? mutate(config, config.length, seed) : config);
        Statistics.collect(loadsOrFailsCleanly(folder, false));
    }

    @Property(tries = 200, seed = "20261126")
    void mutatedLlama2c(@ForAll @LongRange(min = 0, max = Long.MAX_VALUE) long seed) throws IOException {
        Path p = dir.resolve("m.bin");
        Files.write(p, mutate(llama2c, 28, seed));
        Statistics.collect(loadsOrFailsCleanly(p, false));
    }
}
