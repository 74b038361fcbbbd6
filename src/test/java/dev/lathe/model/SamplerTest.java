package dev.lathe.model;

import dev.lathe.Fixtures;
import dev.lathe.io.gguf.GgufWeightSource;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class SamplerTest {

    @Test
    void greedyIsArgmax() {
        float[] l = {0.1f, 2f, -1f, 2f, 1.5f};
        assertThat(Sampler.greedy().sample(l)).isEqualTo(1);
        assertThat(new Sampler(0f, 0.9f, 5).sample(l)).isEqualTo(1);
    }

    @Test
    void sameSeedSameTokensDifferentSeedDifferentTokens() {
        float[] l = new float[50];
        for (int i = 0; i < l.length; i++) l[i] = (float) Math.sin(i) * 2;
        int[] a = draw(new Sampler(1f, 1f, 42), l, 200), b = draw(new Sampler(1f, 1f, 42), l, 200), c = draw(new Sampler(1f, 1f, 43), l, 200);
        assertThat(a).isEqualTo(b);
        assertThat(a).isNotEqualTo(c);
        Sampler s = new Sampler(0.8f, 0.9f, 7);
        int[] d = draw(s, l, 100);
        s.reset();
        assertThat(draw(s, l, 100)).isEqualTo(d);
    }

    @Test
    void frequenciesFollowTheSoftmaxAndTopPTruncates() {
        float[] l = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.15), (float) Math.log(0.05)};
        int n = 40000;
        int[] counts = new int[4];
        Sampler s = new Sampler(1f, 1f, 1);
        for (int i = 0; i < n; i++) counts[s.sample(l)]++;
        assertThat(counts[0] / (double) n).isBetween(0.49, 0.51);
        assertThat(counts[3] / (double) n).isBetween(0.045, 0.055);
        // top-p 0.7: nucleus {0, 1} (0.5 + 0.3 >= 0.7), renormalised 0.625 / 0.375
        int[] tp = new int[4];
        Sampler t = new Sampler(1f, 0.7f, 2);
        for (int i = 0; i < n; i++) tp[t.sample(l)]++;
        assertThat(tp[2] + tp[3]).isZero();
        assertThat(tp[0] / (double) n).isBetween(0.61, 0.64);
        // low temperature concentrates on the top token
        Sampler cold = new Sampler(0.05f, 1f, 3);
        int top = 0;
        for (int i = 0; i < 1000; i++) if (cold.sample(l) == 0) top++;
        assertThat(top).isGreaterThan(990);
        assertThatThrownBy(() -> new Sampler(1f, 0f, 1)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void generationIsDeterministicPerSeedAndStopsOnStopToken() {
        try (GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            LlamaModel m = LlamaModel.load(src);
            int[] prompt = {1, 70, 75, 68};
            Generator.Result a = Generator.generate(m, m.newSession(64), prompt, 20, new Sampler(0.9f, 0.95f, 11), null, null);
            Generator.Result b = Generator.generate(m, m.newSession(64), prompt, 20, new Sampler(0.9f, 0.95f, 11), null, null);
            Generator.Result c = Generator.generate(m, m.newSession(64), prompt, 20, new Sampler(0.9f, 0.95f, 12), null, null);
            assertThat(a.tokens()).hasSize(20).isEqualTo(b.tokens()).isNotEqualTo(c.tokens());
            // greedy generation equals argmax of a batched forward over the generated sequence
            List<Integer> streamed = new ArrayList<>();
            Generator.Result g = Generator.generate(m, m.newSession(64), prompt, 10, Sampler.greedy(), null, streamed::add);
            assertThat(streamed).containsExactly(java.util.Arrays.stream(g.tokens()).boxed().toArray(Integer[]::new));
            int[] all = new int[prompt.length + 10];
            System.arraycopy(prompt, 0, all, 0, prompt.length);
            System.arraycopy(g.tokens(), 0, all, prompt.length, 10);
            float[] logits = m.forward(m.newSession(64), all, 0, all.length, true);
            int v = m.vocabSize();
            for (int i = 0; i < 10; i++) assertThat(Sampler.argmax(logits, (prompt.length - 1 + i) * v, v)).isEqualTo(g.tokens()[i]);
            // stop token ends generation without being emitted
            int stopTok = g.tokens()[3];
            Generator.Result st = Generator.generate(m, m.newSession(64), prompt, 10, Sampler.greedy(), t -> t == stopTok, null);
            assertThat(st.stopped()).isTrue();
            assertThat(st.tokens()).doesNotContain(stopTok);
            // session capacity bounds generation
            Generator.Result full = Generator.generate(m, m.newSession(8), prompt, 100, Sampler.greedy(), null, null);
            assertThat(full.tokens()).hasSize(5);
        }
    }

    static int[] draw(Sampler s, float[] l, int n) {
        int[] r = new int[n];
        for (int i = 0; i < n; i++) r[i] = s.sample(l);
        return r;
    }
}
