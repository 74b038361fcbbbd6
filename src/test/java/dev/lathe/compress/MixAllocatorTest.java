package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.tensor.GgmlType;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

class MixAllocatorTest {
    private static final List<WeightFormat.Gguf> F = List.of(new WeightFormat.Gguf(GgmlType.Q2_K), new WeightFormat.Gguf(GgmlType.Q4_K),
            new WeightFormat.Gguf(GgmlType.Q6_K), new WeightFormat.Gguf(GgmlType.Q8_0));

    /** Exhaustive search over every combination: the reference the dynamic program must match. */
    private static double bruteForce(List<List<MixAllocator.Option>> opts, long budget) {
        double best = Double.POSITIVE_INFINITY;
        int n = opts.size();
        int[] idx = new int[n];
        while (true) {
            long bits = 0;
            double cost = 0;
            for (int t = 0; t < n; t++) {
                bits += opts.get(t).get(idx[t]).bits();
                cost += opts.get(t).get(idx[t]).cost();
            }
            if (bits <= budget) best = Math.min(best, cost);
            int t = 0;
            while (t < n && ++idx[t] == opts.get(t).size()) idx[t++] = 0;
            if (t == n) return best;
        }
    }

    @Test
    void matchesExhaustiveSearchAndStaysWithinBudget() {
        Random rnd = new Random(7);
        for (int trial = 0; trial < 200; trial++) {
            int n = 2 + rnd.nextInt(5);
            Map<String, List<MixAllocator.Option>> m = new LinkedHashMap<>();
            long min = 0, max = 0;
            for (int t = 0; t < n; t++) {
                List<MixAllocator.Option> l = new ArrayList<>();
                int k = 1 + rnd.nextInt(F.size());
                long lo = Long.MAX_VALUE, hi = 0;
                for (int j = 0; j < k; j++) {
                    long bits = 1 + rnd.nextInt(3000); // small budgets: exact units
                    l.add(new MixAllocator.Option(F.get(j), bits, rnd.nextDouble()));
                    lo = Math.min(lo, bits);
                    hi = Math.max(hi, bits);
                }
                min += lo;
                max += hi;
                m.put("t" + t, l);
            }
            long budget = min + (long) (rnd.nextDouble() * (max - min));
            MixAllocator.Choice c = MixAllocator.allocate(m, budget);
            assertThat(c.bits()).isLessThanOrEqualTo(budget);
            assertThat(c.chosen().keySet()).containsExactlyElementsOf(m.keySet());
            double sum = 0;
            long bits = 0;
            for (Map.Entry<String, MixAllocator.Option> e : c.chosen().entrySet()) {
                assertThat(m.get(e.getKey())).contains(e.getValue());
                sum += e.getValue().cost();
                bits += e.getValue().bits();
            }
            assertThat(c.cost()).isCloseTo(sum, within(1e-12));
            assertThat(c.bits()).isEqualTo(bits);
            assertThat(c.cost()).isCloseTo(bruteForce(new ArrayList<>(m.values()), budget), within(1e-12));
        }
    }

    @Test
    void largeBudgetsAreCutIntoUnitsWithoutExceedingThem() {
        // realistic sizes (millions of bits): rounding each option up keeps the result within the budget
        Map<String, List<MixAllocator.Option>> m = new LinkedHashMap<>();
        Random rnd = new Random(3);
        for (int t = 0; t < 60; t++) {
            long w = 65_536L * (1 + rnd.nextInt(16));
            m.put("t" + t, List.of(new MixAllocator.Option(F.get(0), w * 3, 0.01 + rnd.nextDouble()),
                    new MixAllocator.Option(F.get(1), w * 5, 0.002 * rnd.nextDouble()), new MixAllocator.Option(F.get(3), w * 9, 1e-5)));
        }
        long all3 = m.values().stream().mapToLong(l -> l.get(0).bits()).sum();
        long budget = all3 * 5 / 3;
        MixAllocator.Choice c = MixAllocator.allocate(m, budget);
        assertThat(c.bits()).isLessThanOrEqualTo(budget).isGreaterThan(budget * 99 / 100);
        // better than spending the budget uniformly at the middle option
        double mid = m.values().stream().mapToDouble(l -> l.get(1).cost()).sum();
        assertThat(c.cost()).isLessThanOrEqualTo(mid + 1e-12);
    }

    @Test
    void sizesWithoutACommonFactorAreRoundedUpAndStayWithinBudget() {
        Map<String, List<MixAllocator.Option>> m = new LinkedHashMap<>();
        Random rnd = new Random(5);
        for (int t = 0; t < 40; t++) {
            long w = 1_000_003L + rnd.nextInt(1_000_000);
            m.put("t" + t, List.of(new MixAllocator.Option(F.get(0), w * 3 + 1, 1 + rnd.nextDouble()), new MixAllocator.Option(F.get(1), w * 5 + 3, rnd.nextDouble())));
        }
        long lo = m.values().stream().mapToLong(l -> l.get(0).bits()).sum(), hi = m.values().stream().mapToLong(l -> l.get(1).bits()).sum();
        for (long budget : new long[] {lo + lo / 1000, (lo + hi) / 2, hi - 1, hi}) {
            MixAllocator.Choice c = MixAllocator.allocate(m, budget);
            assertThat(c.bits()).isLessThanOrEqualTo(budget);
            assertThat(budget - c.bits()).as("gives away little").isLessThan(budget / 1000 + 6_000_000);
        }
    }

    @Test
    void aBudgetBelowTheSmallestMixIsAnError() {
        Map<String, List<MixAllocator.Option>> m = Map.of("a", List.of(new MixAllocator.Option(F.get(0), 100, 1)),
                "b", List.of(new MixAllocator.Option(F.get(0), 50, 1), new MixAllocator.Option(F.get(1), 80, 0.5)));
        assertThatThrownBy(() -> MixAllocator.allocate(m, 149)).isInstanceOf(LatheException.class).hasMessageContaining("smallest mix");
        assertThat(MixAllocator.allocate(m, 150).cost()).isEqualTo(2.0);
        assertThat(MixAllocator.allocate(m, 180).cost()).isEqualTo(1.5);
        assertThatThrownBy(() -> MixAllocator.allocate(m, 0)).isInstanceOf(LatheException.class);
        assertThatThrownBy(() -> MixAllocator.allocate(Map.of("a", List.of()), 10)).isInstanceOf(LatheException.class).hasMessageContaining("no candidate");
    }
}
