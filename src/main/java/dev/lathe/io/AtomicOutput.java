package dev.lathe.io;

import dev.lathe.LatheException;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * A buffered little-endian writer to a temporary file in the target's folder; {@link #commit()} forces the
 * data to disk and renames it over the target atomically, {@link #close()} without commit deletes it. So a
 * reader never sees a half-written file, and a failed write leaves any previous file untouched.
 */
public final class AtomicOutput implements AutoCloseable {
    private static final int BUFFER = 1 << 20;

    private final Path target;
    private final Path temp;
    private final FileChannel channel;
    private final ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER).order(ByteOrder.LITTLE_ENDIAN);
    private final MemorySegment bufSeg = MemorySegment.ofBuffer(buf);
    private final java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
    private long written;
    private boolean done;

    private AtomicOutput(Path target, Path temp, FileChannel channel) {
        this.target = target;
        this.temp = temp;
        this.channel = channel;
    }

    /** Opens a temp file next to {@code target} (creating the folder if needed). */
    public static AtomicOutput open(Path target) {
        Path abs = target.toAbsolutePath();
        Path dir = abs.getParent();
        try {
            Files.createDirectories(dir);
            Path temp = Files.createTempFile(dir, "." + abs.getFileName() + ".", ".tmp");
            makeReadable(temp);
            return new AtomicOutput(abs, temp, FileChannel.open(temp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING));
        } catch (IOException e) {
            throw new LatheException(target, "cannot create output file: " + e.getMessage(), e);
        }
    }

    /** Temp files are created owner-only; the finished file gets the usual rw-r--r-- like any other output. */
    private static void makeReadable(Path temp) throws IOException {
        if (Files.getFileAttributeView(temp, java.nio.file.attribute.PosixFileAttributeView.class) != null) {
            Files.setPosixFilePermissions(temp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        }
    }

    /** Writes {@code bytes} to {@code target} atomically. */
    public static void writeBytes(Path target, byte[] bytes) {
        write(target, out -> out.bytes(bytes));
    }

    /** Writes {@code target} atomically: the body gets the output; commit happens if it returns normally. */
    public static void write(Path target, Body body) {
        try (AtomicOutput out = open(target)) {
            body.write(out);
            out.commit();
        }
    }

    @FunctionalInterface
    public interface Body {
        void write(AtomicOutput out);
    }

    public Path target() {
        return target;
    }

    /** Bytes written so far. */
    public long position() {
        return written;
    }

    private void room(int n) {
        if (buf.remaining() < n) flush();
    }

    private void flush() {
        buf.flip();
        crc.update(buf.duplicate());
        try {
            while (buf.hasRemaining()) channel.write(buf);
        } catch (IOException e) {
            throw new LatheException(target, "write failed: " + e.getMessage(), e);
        }
        buf.clear();
    }

    /** CRC-32C of every byte written so far (for formats that end with a checksum of their contents). */
    public long checksum() {
        flush();
        return crc.getValue();
    }

    /** Writes {@code n} floats from {@code a[off ..]}, little-endian. */
    public void floats(float[] a, int off, int n) {
        while (n > 0) {
            room(4);
            int k = Math.min(n, buf.remaining() / 4);
            buf.asFloatBuffer().put(a, off, k);
            buf.position(buf.position() + 4 * k);
            written += 4L * k;
            off += k;
            n -= k;
        }
    }

    /** Writes {@code n} ints from {@code a[off ..]}, little-endian. */
    public void ints(int[] a, int off, int n) {
        while (n > 0) {
            room(4);
            int k = Math.min(n, buf.remaining() / 4);
            buf.asIntBuffer().put(a, off, k);
            buf.position(buf.position() + 4 * k);
            written += 4L * k;
            off += k;
            n -= k;
        }
    }

    public void u8(int v) {
        room(1);
        buf.put((byte) v);
        written += 1;
    }

    public void i16(short v) {
        room(2);
        buf.putShort(v);
        written += 2;
    }

    public void i32(int v) {
        room(4);
        buf.putInt(v);
        written += 4;
    }

    public void i64(long v) {
        room(8);
        buf.putLong(v);
        written += 8;
    }

    public void f32(float v) {
        room(4);
        buf.putFloat(v);
        written += 4;
    }

    public void f64(double v) {
        room(8);
        buf.putDouble(v);
        written += 8;
    }

    public void bytes(byte[] b) {
        bytes(b, 0, b.length);
    }

    public void bytes(byte[] b, int off, int len) {
        while (len > 0) {
            room(1);
            int n = Math.min(len, buf.remaining());
            buf.put(b, off, n);
            off += n;
            len -= n;
            written += n;
        }
    }

    /** Copies a memory segment (any size) into the output. */
    public void segment(MemorySegment s) {
        long size = s.byteSize();
        long off = 0;
        while (off < size) {
            room(1);
            int n = (int) Math.min(size - off, buf.remaining());
            bufSeg.asSlice(buf.position(), n).copyFrom(s.asSlice(off, n));
            buf.position(buf.position() + n);
            off += n;
            written += n;
        }
    }

    /** Writes zero bytes until the position is a multiple of {@code alignment}. */
    public void padTo(long alignment) {
        long pad = (alignment - written % alignment) % alignment;
        for (long i = 0; i < pad; i++) u8(0);
    }

    /** Flushes, forces to disk and atomically renames the temp file to the target. */
    public void commit() {
        if (done) throw new IllegalStateException("already committed or closed");
        flush();
        try {
            channel.force(true);
            channel.close();
            try {
                Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            done = true;
        } catch (IOException e) {
            throw new LatheException(target, "cannot finish writing: " + e.getMessage(), e);
        }
    }

    /** Discards the temp file unless committed. */
    @Override
    public void close() {
        if (done) return;
        done = true;
        try {
            channel.close();
        } catch (IOException ignored) {
            // nothing to save
        }
        try {
            Files.deleteIfExists(temp);
        } catch (IOException ignored) {
            // best effort
        }
    }
}
