package dev.lathe.tensor.quant;

import dev.lathe.Fixtures;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.tensor.BlockCodec;
import dev.lathe.tensor.BlockCodecs;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;
import dev.lathe.tensor.TensorOps;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Byte-for-byte comparison with llama-quantize (c392e509): every 2-D tensor of the F32 tiny-llama is
 * quantized row by row and compared with the same tensor in the llama.cpp-made --pure GGUF.
 */
class FixtureQuantizationTest {
    private static GgufFile f32;

    @BeforeAll
    static void open() {
        f32 = GgufFile.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"));
    }

    @AfterAll
    static void close() {
        if (f32 != null) f32.close();
    }

    /** Returns "name: mismatching bytes" for every tensor that differs; empty when all match. */
    static List<String> compare(String file, GgmlType type, Imatrix imatrix) {
        List<String> bad = new ArrayList<>();
        int compared = 0;
        try (GgufFile q = GgufFile.open(Fixtures.fixture("tiny-llama/gguf/" + file))) {
            BlockCodec codec = BlockCodecs.get(type);
            for (Tensor expected : q.tensors()) {
                if (expected.type() != type) continue;
                Tensor src = f32.tensor(expected.name());
                float[] x = TensorOps.toFloats(src);
                int rows = (int) src.rows(), cols = (int) src.cols();
                float[] imp = imatrix == null ? null : imatrix.get(expected.name());
                MemorySegment out = MemorySegment.ofArray(new byte[(int) expected.data().byteSize()]);
                long rb = type.bytesFor(cols);
                for (int r = 0; r < rows; r++) codec.quantize(x, r * cols, cols, imp, out, r * rb);
                byte[] want = expected.data().toArray(ValueLayout.JAVA_BYTE);
                byte[] got = out.toArray(ValueLayout.JAVA_BYTE);
                int diff = 0;
                for (int i = 0; i < want.length; i++) if (want[i] != got[i]) diff++;
                if (diff != 0) bad.add(expected.name() + (imp == null ? "" : " (imatrix)") + ": " + diff + " of " + want.length + " bytes differ");
                compared++;
            }
        }
        assertThat(compared).as("quantized tensors in " + file).isEqualTo(14 + 2);
        return bad;
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({
            "tiny-llama-Q8_0.gguf, Q8_0",
            "tiny-llama-Q4_0.gguf, Q4_0",
            "tiny-llama-Q4_1.gguf, Q4_1",
            "tiny-llama-Q5_0.gguf, Q5_0",
            "tiny-llama-Q5_1.gguf, Q5_1",
            "tiny-llama-Q2_K.gguf, Q2_K",
            "tiny-llama-Q3_K_S.gguf, Q3_K",
            "tiny-llama-Q4_K_S.gguf, Q4_K",
            "tiny-llama-Q5_K_S.gguf, Q5_K",
            "tiny-llama-Q6_K.gguf, Q6_K",
            "tiny-llama-IQ4_NL.gguf, IQ4_NL",
    })
    void quantizationIsByteIdenticalToLlamaQuantize(String file, GgmlType type) {
        assertThat(compare(file, type, null)).isEmpty();
    }

    /**
     * On the llama.cpp-made tensors: dequantize + re-quantize reproduces the file for the formats without a
     * scale search (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1); dot and dotQuantized agree with the decoded weights.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({
            "tiny-llama-Q8_0.gguf, Q8_0, true",
            "tiny-llama-Q4_0.gguf, Q4_0, true",
            "tiny-llama-Q4_1.gguf, Q4_1, true",
            "tiny-llama-Q5_0.gguf, Q5_0, true",
            "tiny-llama-Q5_1.gguf, Q5_1, true",
            "tiny-llama-Q2_K.gguf, Q2_K, false",
            "tiny-llama-Q3_K_S.gguf, Q3_K, false",
            "tiny-llama-Q4_K_S.gguf, Q4_K, false",
            "tiny-llama-Q5_K_S.gguf, Q5_K, false",
            "tiny-llama-Q6_K.gguf, Q6_K, false",
            "tiny-llama-IQ4_NL.gguf, IQ4_NL, false",
    })
    void fixtureTensorsRoundTripAndMultiply(String file, GgmlType type, boolean idempotent) {
        var codec = QuantTestSupport.codec(type);
        try (GgufFile q = GgufFile.open(Fixtures.fixture("tiny-llama/gguf/" + file))) {
            for (String name : List.of("blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output.weight")) {
                Tensor t = q.tensor(name);
                assertThat(t.type()).isEqualTo(type);
                int rows = (int) t.rows(), cols = (int) t.cols();
                long rb = t.rowBytes();
                float[] y = TensorOps.toFloats(t);
                if (idempotent) {
                    MemorySegment out = MemorySegment.ofArray(new byte[(int) t.data().byteSize()]);
                    for (int r = 0; r < rows; r++) codec.quantize(y, r * cols, cols, null, out, r * rb);
                    assertThat(out.toArray(ValueLayout.JAVA_BYTE)).as(name).isEqualTo(t.data().toArray(ValueLayout.JAVA_BYTE));
                }
                float[] x = QuantTestSupport.row(QuantTestSupport.Kind.GAUSSIAN, cols, 99);
                MemorySegment xq = MemorySegment.ofArray(new byte[(int) codec.activationBytes(cols)]);
                codec.quantizeActivations(x, 0, cols, xq, 0);
                for (int r = 0; r < rows; r += 7) {
                    double ref = 0, mag = 0;
                    for (int i = 0; i < cols; i++) {
                        ref += (double) y[r * cols + i] * x[i];
                        mag += Math.abs((double) y[r * cols + i] * x[i]);
                    }
                    assertThat((double) codec.dot(t.data(), r * rb, x, 0, cols)).isCloseTo(ref, org.assertj.core.api.Assertions.within(1e-5 * mag));
                    double[] qref = QuantTestSupport.referenceDot(type, t.data().asSlice(r * rb, rb), xq, cols);
                    assertThat((double) codec.dotQuantized(t.data(), r * rb, xq, 0, cols)).isCloseTo(qref[0], org.assertj.core.api.Assertions.within(qref[1]));
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} with imatrix")
    @CsvSource({
            "tiny-llama-Q4_K_S-imatrix.gguf, Q4_K",
            "tiny-llama-Q2_K-imatrix.gguf, Q2_K",
    })
    void imatrixQuantizationIsByteIdenticalToLlamaQuantize(String file, GgmlType type) {
        Imatrix im = Imatrix.readLegacy(Fixtures.fixture("tiny-llama/gguf/imatrix.dat"));
        assertThat(im.entries()).hasSize(14);
        assertThat(im.chunks()).isEqualTo(161);
        assertThat(im.get("token_embd.weight")).isNull();
        assertThat(compare(file, type, im)).isEmpty();
    }
}
