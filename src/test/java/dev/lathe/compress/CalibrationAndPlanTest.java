package dev.lathe.compress;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.io.ModelLoader;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tokenizer.Tokenizer;
import dev.lathe.tokenizer.Tokenizers;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class CalibrationAndPlanTest {
    @TempDir
    Path tmp;

    @Test
    void randomWindowsAreSeededBosFirstAndCutFromTheText() throws Exception {
        Path text = Fixtures.fixture("text/moby-16k.txt");
        try (WeightSource src = ModelLoader.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            Tokenizer tok = Tokenizers.load(src).orElseThrow();
            CalibrationData a = CalibrationData.randomWindows(List.of(text), tok, 6, 64, 42);
            CalibrationData b = CalibrationData.randomWindows(List.of(text), tok, 6, 64, 42);
            CalibrationData c = CalibrationData.randomWindows(List.of(text), tok, 6, 64, 43);
            assertEquals(6, a.size());
            assertEquals(6 * 64, a.tokens());
            boolean differ = false;
            int[] all = tok.encode(Files.readString(text), false, false);
            for (int i = 0; i < 6; i++) {
                assertArrayEquals(a.samples().get(i), b.samples().get(i));
                differ |= !java.util.Arrays.equals(a.samples().get(i), c.samples().get(i));
                int[] s = a.samples().get(i);
                assertEquals(tok.bosId(), s[0]);
                assertTrue(indexOf(all, java.util.Arrays.copyOfRange(s, 1, s.length)) >= 0, "window not found in the text");
            }
            assertTrue(differ, "another seed gives other windows");
            Path small = tmp.resolve("small.txt");
            Files.writeString(small, "too short");
            LatheException e = assertThrows(LatheException.class, () -> CalibrationData.randomWindows(List.of(small), tok, 4, 64, 1));
            assertTrue(e.getMessage().contains("too few calibration tokens"), e.getMessage());
        }
    }

    private static int indexOf(int[] hay, int[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        return -1;
    }

    @Test
    void llamaCppMixesFollowLlamaTensorGetType() {
        try (WeightSource src = ModelLoader.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            QuantPlan q3 = QuantPlan.llamaCpp(src, "Q3_K_M", false, false);
            assertEquals(12, q3.ftype());
            assertEquals(GgmlType.Q3_K, type(q3, "token_embd.weight"));
            assertEquals(GgmlType.Q6_K, type(q3, "output.weight"));
            assertEquals(GgmlType.Q5_K, type(q3, "blk.1.attn_v.weight")); // first two attn_v get Q5_K
            assertEquals(GgmlType.Q4_K, type(q3, "blk.0.ffn_down.weight"));
            assertEquals(GgmlType.Q4_K, type(q3, "blk.0.attn_output.weight"));
            assertEquals(GgmlType.Q3_K, type(q3, "blk.0.attn_q.weight"));
            QuantPlan q2 = QuantPlan.llamaCpp(src, "Q2_K", false, false);
            assertEquals(GgmlType.Q3_K, type(q2, "blk.0.attn_v.weight")); // GQA 2 < 4
            assertEquals(GgmlType.Q3_K, type(q2, "blk.1.ffn_down.weight"));
            QuantPlan pure = QuantPlan.llamaCpp(src, "Q4_K_S", true, false);
            for (WeightFormat f : pure.formats().values()) assertEquals(GgmlType.Q4_K, ((WeightFormat.Gguf) f).type());
            assertEquals(15, QuantPlan.llamaCpp(src, "q4_k_m", false, false).ftype());
            assertThrows(LatheException.class, () -> QuantPlan.llamaCpp(src, "Q9_K", false, false));
        }
    }

    private static GgmlType type(QuantPlan p, String n) {
        return ((WeightFormat.Gguf) p.format(n)).type();
    }

    @Test
    void rowLengthsABlockTypeCannotTakeFallBackAsInLlamaCpp() {
        List<String> notes = new ArrayList<>();
        assertEquals(GgmlType.Q8_0, QuantPlan.fallback("a", GgmlType.Q6_K, 96, notes));
        assertEquals(GgmlType.Q5_0, QuantPlan.fallback("b", GgmlType.Q4_K, 320, notes));
        assertEquals(GgmlType.IQ4_NL, QuantPlan.fallback("c", GgmlType.Q3_K, 64, notes));
        assertEquals(GgmlType.F16, QuantPlan.fallback("d", GgmlType.Q5_K, 100, notes));
        assertEquals(GgmlType.Q4_K, QuantPlan.fallback("e", GgmlType.Q4_K, 512, notes));
        assertEquals(4, notes.size());
        assertTrue(notes.get(0).contains("fallback"));
        LatheException e = assertThrows(LatheException.class, () -> QuantPlan.fallback("f", GgmlType.Q4_0, 48, notes));
        assertTrue(e.getMessage().contains("no fallback"));
    }

    @Test
    void weightFormatsParse() {
        assertEquals(new WeightFormat.Int(4, 128, true), WeightFormat.parse("int4-g128"));
        assertEquals(new WeightFormat.Int(8, -1, true), WeightFormat.parse("INT8"));
        assertEquals(new WeightFormat.Int(3, 32, false), WeightFormat.parse("int3-g32-asym"));
        assertEquals(new WeightFormat.Gguf(GgmlType.Q4_0), WeightFormat.parse("q4_0"));
        assertThrows(LatheException.class, () -> WeightFormat.parse("int9"));
        assertThrows(LatheException.class, () -> WeightFormat.parse("int4-x"));
        assertThrows(LatheException.class, () -> WeightFormat.parse("Q7_Z"));
    }
}
