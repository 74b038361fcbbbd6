package dev.lathe.prune;

import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class SpillMapTest {
    @Test
    void matricesComeBackExactlyInOrderAndTheFileGoesOnClose() throws java.io.IOException {
        Random r = new Random(3);
        float[] a = new float[1_000_003], b = new float[17], c = new float[0];
        for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian();
        for (int i = 0; i < b.length; i++) b[i] = i % 3 == 0 ? 0f : (float) r.nextGaussian();
        a[5] = Float.MIN_VALUE;
        a[6] = -0f;
        Path file;
        try (SpillMap m = new SpillMap()) {
            file = m.file();
            m.put("a", a);
            m.put("b", b);
            m.put("c", c);
            assertThat(Files.exists(file)).isTrue();
            assertThat(m.size()).isEqualTo(3);
            assertThat(List.copyOf(m.keySet())).containsExactly("a", "b", "c");
            assertThat(m.get("a")).isEqualTo(a).isNotSameAs(a);
            assertThat(Float.floatToRawIntBits(m.get("a")[6])).isEqualTo(Float.floatToRawIntBits(-0f));
            assertThat(m.get("b")).isEqualTo(b);
            assertThat(m.get("c")).isEmpty();
            assertThat(m.get("d")).isNull();
            assertThat(m.containsKey("b")).isTrue();
            assertThat(m.segment("b").toArray(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN))).isEqualTo(b);
            assertThat(Files.size(file)).isEqualTo(4L * (a.length + b.length));
            for (Map.Entry<String, float[]> e : m.entrySet()) assertThat(e.getValue()).isEqualTo(Map.of("a", a, "b", b, "c", c).get(e.getKey()));
            assertThatThrownBy(() -> m.put("b", b)).isInstanceOf(IllegalArgumentException.class);
        }
        assertThat(Files.exists(file)).isFalse();
    }
}
