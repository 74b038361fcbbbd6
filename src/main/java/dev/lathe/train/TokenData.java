package dev.lathe.train;

import dev.lathe.io.AtomicOutput;

import dev.lathe.LatheException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * Tokenized training and validation streams. Each document becomes {@code [BOS] tokens [EOS]} (either marker
 * may be absent: id &lt; 0) and the documents are concatenated; sequences are then cut from the stream
 * ({@link SequenceSampler}), so documents are packed into fixed-length sequences with the markers between
 * them. The split is per document: document i goes to validation when a hash of (seed, i) falls under the
 * validation fraction.
 *
 * @param train          training token stream
 * @param validation     validation token stream
 * @param trainBytes     UTF-8 bytes of the training documents' text
 * @param validationBytes UTF-8 bytes of the validation documents' text (for bits per byte)
 */
public record TokenData(int[] train, int[] validation, long trainBytes, long validationBytes, int trainDocs, int validationDocs) {

    /** Tokenizes a corpus. */
    public static TokenData build(TextCorpus corpus, TextEncoder enc, int bos, int eos, double validationFraction, long seed) {
        if (!(validationFraction >= 0 && validationFraction < 1)) throw new IllegalArgumentException("validation fraction " + validationFraction);
        IntList tr = new IntList(), va = new IntList();
        long[] bytes = new long[2];
        int[] docs = new int[2];
        corpus.forEach(d -> {
            boolean val = isValidation(seed, d.index(), validationFraction);
            IntList dst = val ? va : tr;
            if (bos >= 0) dst.add(bos);
            dst.addAll(enc.encode(d.text()));
            if (eos >= 0) dst.add(eos);
            bytes[val ? 1 : 0] += d.text().getBytes(StandardCharsets.UTF_8).length;
            docs[val ? 1 : 0]++;
        });
        return new TokenData(tr.toArray(), va.toArray(), bytes[0], bytes[1], docs[0], docs[1]);
    }

    /** Whether document {@code index} belongs to the validation split. */
    public static boolean isValidation(long seed, int index, double fraction) {
        return Rng.of(seed, 0x5EED0000L + index).nextDouble() < fraction;
    }

    /**
     * The cached token data if {@code cache} exists and was made with the same fingerprint, else builds it
     * and writes the cache (atomically). The fingerprint covers the files (path, size, modification time),
     * splitting, encoder id, markers, fraction and seed.
     */
    public static TokenData cached(Path cache, TextCorpus corpus, TextEncoder enc, int bos, int eos, double validationFraction, long seed) {
        StringBuilder fp = new StringBuilder("enc=").append(enc.id()).append(";bos=").append(bos).append(";eos=").append(eos)
                .append(";val=").append(validationFraction).append(";seed=").append(seed).append(";split=").append(corpus.splitOnBlankLines());
        for (Path f : corpus.files()) {
            try {
                fp.append(';').append(f.toAbsolutePath().normalize()).append(':').append(Files.size(f)).append(':')
                        .append(Files.getLastModifiedTime(f).toMillis());
            } catch (IOException e) {
                throw new LatheException(f, "cannot stat: " + e.getMessage(), e);
            }
        }
        String fingerprint = fp.toString();
        if (Files.isRegularFile(cache)) {
            TokenData d = readCache(cache, fingerprint);
            if (d != null) return d;
        }
        TokenData d = build(corpus, enc, bos, eos, validationFraction, seed);
        d.writeCache(cache, fingerprint);
        return d;
    }

    private static final byte[] MAGIC = "LATHETOK".getBytes(StandardCharsets.US_ASCII);

    /** Cache layout (LE): magic, u32 fingerprint length, fingerprint UTF-8, 4 × i64 counts, i32 doc counts, ids, u64 CRC-32C. */
    public void writeCache(Path cache, String fingerprint) {
        byte[] fpb = fingerprint.getBytes(StandardCharsets.UTF_8);
        AtomicOutput.write(cache, out -> {
            out.bytes(MAGIC);
            out.i32(fpb.length);
            out.bytes(fpb);
            out.i64(train.length);
            out.i64(validation.length);
            out.i64(trainBytes);
            out.i64(validationBytes);
            out.i32(trainDocs);
            out.i32(validationDocs);
            out.ints(train, 0, train.length);
            out.ints(validation, 0, validation.length);
            out.i64(out.checksum());
        });
    }

    /** The cached data, or null when the fingerprint differs; a corrupt cache raises {@link LatheException}. */
    public static TokenData readCache(Path cache, String fingerprint) {
        byte[] all;
        try {
            all = Files.readAllBytes(cache);
        } catch (IOException e) {
            throw new LatheException(cache, "cannot read token cache: " + e.getMessage(), e);
        }
        ByteBuffer b = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        if (all.length < 12 + 8 || !Arrays.equals(Arrays.copyOf(all, 8), MAGIC)) throw new LatheException(cache, "not a Lathe token cache");
        b.position(8);
        int fl = b.getInt();
        if (fl < 0 || 12L + fl + 40 + 8 > all.length) throw new LatheException(cache, "corrupt or truncated token cache");
        byte[] fpb = new byte[fl];
        b.get(fpb);
        long nt = b.getLong(), nv = b.getLong(), tb = b.getLong(), vb = b.getLong();
        int td = b.getInt(), vd = b.getInt();
        long expected = 12L + fl + 40 + 4 * (nt + nv) + 8;
        if (nt < 0 || nv < 0 || expected != all.length) {
            throw new LatheException(cache, "corrupt or truncated token cache: " + all.length + " bytes, expected " + expected);
        }
        CRC32C crc = new CRC32C();
        crc.update(all, 0, all.length - 8);
        if (crc.getValue() != ByteBuffer.wrap(all, all.length - 8, 8).order(ByteOrder.LITTLE_ENDIAN).getLong()) {
            throw new LatheException(cache, "corrupt token cache: checksum mismatch");
        }
        if (!new String(fpb, StandardCharsets.UTF_8).equals(fingerprint)) return null;
        int[] tr = new int[(int) nt], va = new int[(int) nv];
        b.asIntBuffer().get(tr);
        b.position(b.position() + 4 * tr.length);
        b.asIntBuffer().get(va);
        return new TokenData(tr, va, tb, vb, td, vd);
    }

    /** A growable int array. */
    static final class IntList {
        private int[] a = new int[1024];
        private int n;

        void add(int v) {
            if (n == a.length) a = Arrays.copyOf(a, Math.multiplyExact(a.length, 2));
            a[n++] = v;
        }

        void addAll(int[] v) {
            while (n + v.length > a.length) a = Arrays.copyOf(a, Math.multiplyExact(a.length, 2));
            System.arraycopy(v, 0, a, n, v.length);
            n += v.length;
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}
