package dev.lathe.eval;

import dev.lathe.Fixtures;
import dev.lathe.LatheException;
import dev.lathe.compress.MixAllocator;
import dev.lathe.compress.QuantPlan;
import dev.lathe.compress.WeightFormat;
import dev.lathe.io.gguf.GgufWeightSource;
import dev.lathe.model.Parallel;
import dev.lathe.tensor.GgmlType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class AutoMixTest {
    @TempDir
    Path tmp;

    static final Perplexity.Options O = new Perplexity.Options(128, 1, -1, 2);
    static final List<GgmlType> TYPES = List.of(GgmlType.Q2_K, GgmlType.Q4_K, GgmlType.Q8_0);

    @Test
    void cachedReferenceGivesThePairedResult() throws IOException {
        int[] ids = PerplexityTest.mobyIds();
        try (GgufWeightSource f32 = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"));
             GgufWeightSource q4 = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-Q4_K_S.gguf"))) {
            var ref = dev.lathe.model.LlamaModel.load(f32);
            var m = dev.lathe.model.LlamaModel.load(q4);
            KlDivergence.Result paired = KlDivergence.compute(ref, m, ids, O);
            KlDivergence.Result cached = KlDivergence.compute(KlDivergence.reference(ref, ids, O), m);
            assertThat(cached.count()).isEqualTo(paired.count());
            assertThat(cached.mean()).isGreaterThan(0).isCloseTo(paired.mean(), org.assertj.core.api.Assertions.withinPercentage(0.1));
            assertThat(cached.sameTop()).isEqualTo(paired.sameTop());
            assertThat(cached.pplModel()).isEqualTo(paired.pplModel());
            assertThat(cached.pplRef()).isCloseTo(paired.pplRef(), org.assertj.core.api.Assertions.withinPercentage(1e-4));
        }
    }

    @Test
    void choosesWithinTheBudgetBeatsTheUniformTypeAndReusesItsMeasurements() throws IOException {
        int[] ids = PerplexityTest.mobyIds();
        Path cache = tmp.resolve("sens.json");
        try (GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            long weights = QuantPlan.quantizable(src).stream().mapToLong(n -> src.tensor(n).numElements()).sum();
            long q4bits = QuantPlan.quantizable(src).stream().mapToLong(n -> MixAllocator.bits(src.tensor(n), new WeightFormat.Gguf(GgmlType.Q4_K))).sum();
            double bpw = (double) q4bits / weights; // the budget of uniform Q4_K
            int[] calls = {0};
            AutoMix.Result r = AutoMix.plan(src, TYPES, bpw, ids, O, cache, Parallel.common(), (d, t, e, eta) -> calls[0]++);
            int n = QuantPlan.quantizable(src).size();
            assertThat(r.measured()).isEqualTo(3 * n).isEqualTo(calls[0]);
            assertThat(r.reused()).isZero();
            assertThat(r.choice().bits()).isLessThanOrEqualTo(q4bits);
            assertThat(r.plan().formats().keySet()).containsExactlyElementsOf(QuantPlan.quantizable(src));
            assertThat(r.plan().formats().values()).as("a real mix").extracting(Object::toString).contains("Q8_0", "Q2_K");
            // uniform Q4_K is one feasible choice, so the optimum predicts no more divergence than it
            List<Sensitivity.Entry> q4 = AutoMix.read(cache, AutoMix.textId(ids, O)).stream().filter(e -> e.format().equals("Q4_K")).toList();
            double uniform = q4.stream().mapToDouble(Sensitivity.Entry::kldMean).sum();
            assertThat(r.choice().cost()).isLessThan(uniform);

            // the whole measured mix, against the model, really does better than uniform Q4_K
            double mixKld = measured(src, r.plan().formats(), ids);
            double q4Kld = measured(src, QuantPlan.uniform(src, new WeightFormat.Gguf(GgmlType.Q4_K)).formats(), ids);
            System.out.printf("tiny-llama at %.3f bpw: measured mix KLD %.6f (predicted %.6f), uniform Q4_K %.6f (predicted %.6f)%n",
                    bpw, mixKld, r.choice().cost(), q4Kld, uniform);
            assertThat(mixKld).isLessThan(q4Kld);

            // a second run, other budget, measures nothing; more bits never predict more divergence
            AutoMix.Result again = AutoMix.plan(src, TYPES, bpw, ids, O, cache, Parallel.common(), (d, t, e, eta) -> calls[0]++);
            assertThat(again.measured()).isZero();
            assertThat(again.reused()).isEqualTo(3 * n);
            assertThat(again.plan().formats()).isEqualTo(r.plan().formats());
            AutoMix.Result more = AutoMix.plan(src, TYPES, bpw + 1, ids, O, cache, Parallel.common(), (d, t, e, eta) -> {});
            assertThat(more.choice().cost()).isLessThanOrEqualTo(r.choice().cost());
            assertThat(calls[0]).isEqualTo(3 * n);

            // prices scaled per tensor and format (GPTQ's error ratios): Q8_0 made dear is no longer chosen, the
            // summed cost is the scaled one, and nothing is measured again
            Map<String, Map<WeightFormat, Double>> scale = new java.util.HashMap<>();
            for (String t : QuantPlan.quantizable(src)) scale.put(t, Map.of(new WeightFormat.Gguf(GgmlType.Q8_0), 1e6, new WeightFormat.Gguf(GgmlType.Q4_K), 0.5));
            AutoMix.Result scaled = AutoMix.plan(src, TYPES, bpw, ids, O, cache, AutoMix.Measure.ALL, scale, Parallel.common(), (d, t, e, eta) -> calls[0]++);
            assertThat(calls[0]).isEqualTo(3 * n);
            assertThat(scaled.plan().formats().values()).extracting(Object::toString).doesNotContain("Q8_0");
            double expect = 0;
            Map<String, Double> kq = new java.util.HashMap<>();
            for (Sensitivity.Entry e : AutoMix.read(cache, AutoMix.textId(ids, O))) kq.put(e.tensor() + "/" + e.format(), e.kldMean());
            for (var e : scaled.plan().formats().entrySet()) {
                expect += kq.get(e.getKey() + "/" + e.getValue()) * (e.getValue().toString().equals("Q4_K") ? 0.5 : 1);
            }
            assertThat(scaled.choice().cost()).isCloseTo(expect, org.assertj.core.api.Assertions.withinPercentage(1e-9));
            assertThat(scaled.plan().notes().getFirst()).contains("GPTQ's error ratios");
        }
    }

    @Test
    void anchorsMeasureTwoTypesPerTensorAndPredictTheRest() throws IOException {
        int[] ids = PerplexityTest.mobyIds();
        Path all = tmp.resolve("all.json"), anchors = tmp.resolve("anchors.json");
        List<GgmlType> types = List.of(GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q8_0);
        try (GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            int n = QuantPlan.quantizable(src).size();
            AutoMix.Result a = AutoMix.plan(src, types, 4.5, ids, O, anchors, AutoMix.Measure.ANCHORS, Parallel.common(), (d, t, e, eta) -> {});
            assertThat(a.measured()).isEqualTo(2 * n);
            assertThat(a.predicted()).isEqualTo(3 * n);
            assertThat(AutoMix.read(anchors, AutoMix.textId(ids, O))).hasSize(2 * n).allMatch(e -> e.format().equals("Q4_K") || e.format().equals("Q8_0"));
            AutoMix.Result m = AutoMix.plan(src, types, 4.5, ids, O, all, AutoMix.Measure.ALL, Parallel.common(), (d, t, e, eta) -> {});
            assertThat(m.measured()).isEqualTo(5 * n);
            // predictions against the measurements of the same candidates
            Map<String, Double> meas = new java.util.HashMap<>();
            for (Sensitivity.Entry e : AutoMix.read(all, AutoMix.textId(ids, O))) meas.put(e.tensor() + "/" + e.format(), e.kldMean());
            double sumLog = 0;
            int k = 0;
            for (String t : QuantPlan.quantizable(src)) {
                var cands = MixAllocator.candidates(src, types).get(t);
                var err = AutoMix.roundingErrors(src, t, cands, Parallel.common());
                var an = AutoMix.anchorsOf(src, t, cands);
                Map<String, Sensitivity.Entry> known = new java.util.HashMap<>();
                for (var f : an) known.put(t + "/" + f, new Sensitivity.Entry(t, f.toString(), 0, 0, meas.get(t + "/" + f), 0, 0, 1));
                for (var f : cands) {
                    if (an.contains(f) || meas.get(t + "/" + f) < 1e-6) continue;
                    sumLog += Math.abs(Math.log(AutoMix.predict(err, an, known, t, f) / meas.get(t + "/" + f)));
                    k++;
                }
            }
            System.out.printf("tiny-llama: anchors predict %d measured KLDs within x%.2f on average%n", k, Math.exp(sumLog / k));
            assertThat(k).isGreaterThan(n);
            assertThat(sumLog / k).isLessThan(Math.log(1.5));
            // the predicted mix still beats uniform Q4_K at its size
            double mixKld = measured(src, a.plan().formats(), ids);
            double q4Kld = measured(src, QuantPlan.uniform(src, new WeightFormat.Gguf(GgmlType.Q4_K)).formats(), ids);
            assertThat(mixKld).isLessThan(q4Kld);
        }
    }

    private static double measured(GgufWeightSource src, Map<String, WeightFormat> formats, int[] ids) {
        java.util.Map<String, dev.lathe.tensor.Tensor> map = new java.util.LinkedHashMap<>();
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
            for (String n : src.tensorNames()) {
                WeightFormat f = formats.get(n);
                map.put(n, f == null ? src.tensor(n) : Sensitivity.quantize(src.tensor(n), f, Parallel.common(), arena, new dev.lathe.compress.QuantizedWeight[1]));
            }
            var m = dev.lathe.model.LlamaModel.load(new dev.lathe.model.TensorMapSource(src.path(), src.config(), map, null));
            return KlDivergence.compute(dev.lathe.model.LlamaModel.load(src), m, ids, O).mean();
        }
    }

    @Test
    void aCacheFromOtherTextOrABadFileIsRefused() throws IOException {
        int[] ids = PerplexityTest.mobyIds();
        Path cache = tmp.resolve("sens.json");
        try (GgufWeightSource src = GgufWeightSource.open(Fixtures.fixture("tiny-llama/gguf/tiny-llama-f32.gguf"))) {
            AutoMix.plan(src, List.of(GgmlType.Q8_0), 9, ids, O, cache, Parallel.common(), (d, t, e, eta) -> {});
            int[] other = java.util.Arrays.copyOfRange(ids, 7, ids.length);
            assertThatThrownBy(() -> AutoMix.plan(src, List.of(GgmlType.Q8_0), 9, other, O, cache, Parallel.common(), (d, t, e, eta) -> {}))
                    .isInstanceOf(LatheException.class).hasMessageContaining("other calibration text").hasMessageContaining(cache.toString());
            Files.writeString(cache, "{\"tensors\": [");
            assertThatThrownBy(() -> AutoMix.plan(src, List.of(GgmlType.Q8_0), 9, ids, O, cache, Parallel.common(), (d, t, e, eta) -> {}))
                    .isInstanceOf(LatheException.class).hasMessageContaining("invalid JSON");
            assertThatThrownBy(() -> AutoMix.plan(src, List.of(GgmlType.Q8_0), 2, ids, O, null, Parallel.common(), (d, t, e, eta) -> {}))
                    .isInstanceOf(LatheException.class).hasMessageContaining("smallest mix");
            assertThatThrownBy(() -> AutoMix.plan(src, AutoMix.DEFAULT_TYPES, 2, ids, O, null, Parallel.common(), (d, t, e, eta) -> {
                throw new AssertionError("measured before checking the budget");
            })).isInstanceOf(LatheException.class).hasMessageContaining("smallest mix");
        }
    }
}
