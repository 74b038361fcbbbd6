package dev.lathe.compress;

import dev.lathe.Fixtures;
import dev.lathe.io.ModelLoader;
import dev.lathe.model.Parallel;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.quant.Imatrix;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class ImatrixTest {
    @TempDir
    Path tmp;

    @Test
    void matchesLlamaImatrixOnTinyLlama() {
        Path model = Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf");
        Path text = Fixtures.fixture("text/moby-16k.txt");
        Imatrix ref = Imatrix.readLegacy(Fixtures.fixture("tiny-llama/gguf/imatrix.dat"));
        try (WeightSource src = ModelLoader.open(model)) {
            Tokenizer tok = Tokenizers.load(src).orElseThrow();
            CalibrationData data = CalibrationData.chunks(text, tok, 128, -1);
            assertEquals(161, data.size());
            ImatrixCollector col = new ImatrixCollector();
            Calibrator.run(src, data, QuantPlan.uniform(src, WeightFormat.parse("f32")), List.of(col),
                    new Calibrator.Options(true, Parallel.common()), Calibrator.Listener.NONE);
            Path out = tmp.resolve("imatrix.dat");
            col.writeLegacy(out, "text/moby-16k.txt");
            Imatrix mine = Imatrix.readLegacy(out);
            assertEquals(161, mine.chunks());
            assertEquals(ref.entries().keySet(), mine.entries().keySet());
            double worst = 0;
            for (String name : ref.entries().keySet()) {
                float[] a = ref.get(name), b = mine.get(name);
                assertEquals(a.length, b.length, name);
                for (int j = 0; j < a.length; j++) {
                    double rel = Math.abs(a[j] - b[j]) / Math.max(1e-12, Math.abs(a[j]));
                    worst = Math.max(worst, rel);
                }
            }
            System.out.println("imatrix max relative difference vs llama-imatrix: " + worst);
            assertTrue(worst < 1e-3, "max relative difference " + worst);
        }
    }
}
