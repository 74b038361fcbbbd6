package dev.lathe.eval;

import dev.lathe.model.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * Measures the machine's memory read bandwidth the way decode uses it: all threads of the pool stream
 * through a buffer much larger than the caches with vector loads, the median of several passes. Decode
 * of a model whose weights are W bytes cannot exceed bandwidth / W tokens per second.
 */
public final class MemoryBandwidth {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    private MemoryBandwidth() {}

    /** Median read bandwidth in GB/s (1e9 bytes) over {@code passes} passes through {@code bytes} bytes. */
    public static double readGBps(Parallel pool, long bytes, int passes) {
        long step = (long) F.length() * 4 * 4;
        bytes = bytes / (64 * step) * (64 * step);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment seg = arena.allocate(bytes, 64);
            for (long i = 0; i < bytes; i += 4096) seg.set(ValueLayout.JAVA_FLOAT, i, 1e-3f);
            int parts = 64;
            long per = bytes / parts;
            double[] gbps = new double[passes];
            float[] sink = new float[parts];
            for (int p = -1; p < passes; p++) {
                long t0 = System.nanoTime();
                pool.forRange(parts, 1, (worker, from, to) -> {
                    for (int part = from; part < to; part++) sink[part] = sum(seg, part * per, per);
                });
                long t1 = System.nanoTime();
                if (p >= 0) gbps[p] = bytes / ((t1 - t0) / 1e9) / 1e9;
            }
            float s = 0;
            for (float v : sink) s += v;
            if (Float.isNaN(s)) throw new IllegalStateException("unreachable: NaN checksum");
            Arrays.sort(gbps);
            return gbps[passes / 2];
        }
    }

    private static float sum(MemorySegment seg, long off, long len) {
        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), a2 = FloatVector.zero(F), a3 = FloatVector.zero(F);
        long vb = F.length() * 4L;
        for (long i = off; i < off + len; i += 4 * vb) {
            a0 = a0.add(FloatVector.fromMemorySegment(F, seg, i, ByteOrder.nativeOrder()));
            a1 = a1.add(FloatVector.fromMemorySegment(F, seg, i + vb, ByteOrder.nativeOrder()));
            a2 = a2.add(FloatVector.fromMemorySegment(F, seg, i + 2 * vb, ByteOrder.nativeOrder()));
            a3 = a3.add(FloatVector.fromMemorySegment(F, seg, i + 3 * vb, ByteOrder.nativeOrder()));
        }
        return a0.add(a1).add(a2).add(a3).reduceLanes(VectorOperators.ADD);
    }
}
