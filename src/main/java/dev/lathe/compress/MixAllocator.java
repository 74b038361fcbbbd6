package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.model.WeightSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A per-tensor mix chosen by measurement instead of by rule: given, for every quantizable weight, a few
 * candidate block types with their size in bits and their cost (the KL divergence the tensor causes when it
 * alone is quantized to that type, see the {@code sensitivity} command), pick one type per tensor so that the
 * summed cost is smallest and the total size stays within a bit budget. Costs of different tensors are taken
 * as additive, which holds for small errors (the KL divergence is locally quadratic in the logits' error and
 * errors of different tensors are nearly uncorrelated).
 * <p>
 * This is a multiple-choice knapsack, solved by dynamic programming over the budget in units of the greatest
 * common divisor of the option sizes (block-quantized sizes share large factors, so this is exact for real
 * models: 1,024-bit units for lathe-ref). Should that make more than {@link #MAX_STEPS} units, the unit is
 * enlarged and each option's size rounded up to whole units, so the result never exceeds the budget and
 * gives away at most (tensors / MAX_STEPS) of it.
 */
public final class MixAllocator {
    private MixAllocator() {}

    /** Most budget units of the dynamic program (its choice table holds tensors x units bytes). */
    static final int MAX_STEPS = 400_000;

    /** One candidate for a tensor: its format, stored size and measured cost. */
    public record Option(WeightFormat format, long bits, double cost) {}

    /** The chosen option per tensor (in the order given), their total size and summed cost. */
    public record Choice(Map<String, Option> chosen, long bits, double cost) {}

    /**
     * Candidate formats per quantizable tensor: each of {@code types}, replaced by llama.cpp's fallback where
     * the row length does not fit the block (so Q4_K on 704-wide rows is Q5_0), without duplicates.
     */
    public static Map<String, List<WeightFormat.Gguf>> candidates(WeightSource src, List<GgmlType> types) {
        if (types.isEmpty()) throw new LatheException("the mix needs at least one candidate type");
        Map<String, List<WeightFormat.Gguf>> out = new LinkedHashMap<>();
        for (String n : QuantPlan.quantizable(src)) {
            long cols = src.tensor(n).cols();
            List<WeightFormat.Gguf> l = new ArrayList<>();
            for (GgmlType t : types) {
                WeightFormat.Gguf f = new WeightFormat.Gguf(QuantPlan.fallback(n, t, cols, new ArrayList<>()));
                if (!l.contains(f)) l.add(f);
            }
            out.put(n, l);
        }
        return out;
    }

    /** Stored bits of {@code t} in GGUF type {@code f}. */
    public static long bits(Tensor t, WeightFormat.Gguf f) {
        return 8L * t.rows() * f.type().bytesFor(t.cols());
    }

    /**
     * The cheapest-cost choice within {@code budgetBits}.
     *
     * @throws LatheException when even the smallest option of every tensor exceeds the budget
     */
    public static Choice allocate(Map<String, List<Option>> options, long budgetBits) {
        if (options.isEmpty()) throw new LatheException("nothing to allocate");
        if (budgetBits <= 0) throw new LatheException("the bit budget must be positive, got " + budgetBits);
        long min = 0;
        for (Map.Entry<String, List<Option>> e : options.entrySet()) {
            if (e.getValue().isEmpty()) throw new LatheException("tensor " + e.getKey() + " has no candidate format");
            if (e.getValue().size() > 127) throw new LatheException("tensor " + e.getKey() + " has more than 127 candidates");
            long m = Long.MAX_VALUE;
            for (Option o : e.getValue()) {
                if (o.bits() <= 0 || !Double.isFinite(o.cost())) throw new LatheException("tensor " + e.getKey() + ": bad option " + o);
                m = Math.min(m, o.bits());
            }
            min += m;
        }
        if (min > budgetBits) {
            throw new LatheException(String.format(java.util.Locale.ROOT, "the budget of %,d bits is below the smallest mix of the candidate types (%,d bits)", budgetBits, min));
        }
        long g = 0;
        for (List<Option> l : options.values()) for (Option o : l) g = gcd(g, o.bits());
        int maxSteps = (int) Math.max(1_000, Math.min(MAX_STEPS, (64L << 20) / options.size()));
        long unit = budgetBits / g <= maxSteps ? g : (budgetBits + maxSteps - 1) / maxSteps;
        int cap = (int) (budgetBits / unit);
        List<String> names = new ArrayList<>(options.keySet());
        int n = names.size();
        double[] dp = new double[cap + 1];
        java.util.Arrays.fill(dp, Double.POSITIVE_INFINITY);
        dp[0] = 0;
        byte[][] pick = new byte[n][cap + 1];
        for (int t = 0; t < n; t++) {
            List<Option> opts = options.get(names.get(t));
            double[] next = new double[cap + 1];
            java.util.Arrays.fill(next, Double.POSITIVE_INFINITY);
            for (int k = 0; k < opts.size(); k++) {
                Option o = opts.get(k);
                long w = (o.bits() + unit - 1) / unit;
                if (w > cap) continue;
                int wi = (int) w;
                for (int c = 0; c + wi <= cap; c++) {
                    if (dp[c] == Double.POSITIVE_INFINITY) continue;
                    double v = dp[c] + o.cost();
                    if (v < next[c + wi]) {
                        next[c + wi] = v;
                        pick[t][c + wi] = (byte) k;
                    }
                }
            }
            dp = next;
        }
        int best = -1;
        for (int c = 0; c <= cap; c++) if (dp[c] < Double.POSITIVE_INFINITY && (best < 0 || dp[c] < dp[best])) best = c;
        if (best < 0) {
            // only reachable when rounding up to whole units pushes the smallest mix over the budget
            throw new LatheException(String.format(java.util.Locale.ROOT, "the budget of %,d bits is within rounding of the smallest mix (%,d bits); raise it a little", budgetBits, min));
        }
        Option[] chosen = new Option[n];
        int c = best;
        for (int t = n - 1; t >= 0; t--) {
            Option o = options.get(names.get(t)).get(pick[t][c]);
            chosen[t] = o;
            c -= (int) ((o.bits() + unit - 1) / unit);
        }
        Map<String, Option> out = new LinkedHashMap<>();
        long bits = 0;
        double cost = 0;
        for (int t = 0; t < n; t++) {
            out.put(names.get(t), chosen[t]);
            bits += chosen[t].bits();
            cost += chosen[t].cost();
        }
        return new Choice(out, bits, cost);
    }

    private static long gcd(long a, long b) {
        while (b != 0) {
            long t = a % b;
            a = b;
            b = t;
        }
        return a;
    }
}
