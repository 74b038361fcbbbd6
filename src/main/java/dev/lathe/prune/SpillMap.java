package dev.lathe.prune;

import dev.lathe.LatheException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.AbstractMap;
import java.util.AbstractSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Float matrices kept in a temporary file instead of the heap (little-endian F32, one after another), for the
 * pruned weights of a calibrated pruning run: every block's pruned matrices are written out as the pipeline moves
 * on, so the heap holds one block, not the model (a 7B model's weights are 28 GB as floats). {@link #get} reads a
 * matrix back into a new array; {@link #segment} maps it read-only without copying. The file is deleted by
 * {@link #close} (and at JVM exit, if it was not closed).
 */
final class SpillMap extends AbstractMap<String, float[]> implements AutoCloseable {
    private record Slot(long offset, int count) {}

    private final Path file;
    private final FileChannel channel;
    private final Map<String, Slot> slots = new LinkedHashMap<>();
    private long end;

    SpillMap() {
        try {
            file = Files.createTempFile("lathe-pruned-", ".f32");
            file.toFile().deleteOnExit();
            channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new LatheException(Path.of(System.getProperty("java.io.tmpdir")), "cannot create a temporary file for the pruned weights: " + e.getMessage(), e);
        }
    }

    Path file() {
        return file;
    }

    @Override
    public synchronized float[] put(String name, float[] w) {
        if (slots.containsKey(name)) throw new IllegalArgumentException(name + " is stored already");
        ByteBuffer b = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
        long off = end;
        try {
            long pos = off;
            for (int i = 0; i < w.length; ) {
                b.clear();
                int n = Math.min(w.length - i, b.capacity() / 4);
                b.asFloatBuffer().put(w, i, n);
                b.limit(4 * n);
                while (b.hasRemaining()) pos += channel.write(b, pos);
                i += n;
            }
        } catch (IOException e) {
            throw new LatheException(file, "cannot write pruned weights: " + e.getMessage(), e);
        }
        end = off + 4L * w.length;
        slots.put(name, new Slot(off, w.length));
        return null;
    }

    /** A new array holding the matrix, or null if none is stored under {@code name}. */
    @Override
    public float[] get(Object name) {
        MemorySegment s = segment((String) name);
        return s == null ? null : s.toArray(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN));
    }

    /** The stored matrix mapped read-only (little-endian F32), or null. */
    synchronized MemorySegment segment(String name) {
        Slot s = slots.get(name);
        if (s == null) return null;
        if (s.count == 0) return MemorySegment.ofArray(new float[0]);
        try {
            return channel.map(FileChannel.MapMode.READ_ONLY, s.offset, 4L * s.count, Arena.ofAuto());
        } catch (IOException e) {
            throw new LatheException(file, "cannot map pruned weights: " + e.getMessage(), e);
        }
    }

    @Override
    public boolean containsKey(Object name) {
        return slots.containsKey(name);
    }

    @Override
    public Set<String> keySet() {
        return java.util.Collections.unmodifiableSet(slots.keySet());
    }

    @Override
    public Set<Entry<String, float[]>> entrySet() {
        return new AbstractSet<>() {
            @Override
            public Iterator<Entry<String, float[]>> iterator() {
                Iterator<String> it = slots.keySet().iterator();
                return new Iterator<>() {
                    @Override
                    public boolean hasNext() {
                        return it.hasNext();
                    }

                    @Override
                    public Entry<String, float[]> next() {
                        String n = it.next();
                        return new SimpleImmutableEntry<>(n, get(n));
                    }
                };
            }

            @Override
            public int size() {
                return slots.size();
            }
        };
    }

    @Override
    public int size() {
        return slots.size();
    }

    /** Closes and deletes the file; mapped segments stay readable until they are collected. */
    @Override
    public synchronized void close() {
        try {
            channel.close();
            Files.deleteIfExists(file);
        } catch (IOException ignored) {
            // best effort: the file is also marked delete-on-exit
        }
    }
}
