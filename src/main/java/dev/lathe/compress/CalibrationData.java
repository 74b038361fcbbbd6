package dev.lathe.compress;

import dev.lathe.LatheException;
import dev.lathe.tokenizer.Tokenizer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

/**
 * Calibration token sequences: {@code samples[i]} is one sequence, run from position 0. Made either as
 * seeded random windows of tokenized text ({@link #randomWindows}) or as llama-imatrix/llama-perplexity's
 * consecutive chunks whose first token is replaced by BOS ({@link #chunks}).
 *
 * @param source a short description of where the tokens came from (file names), stored in imatrix files
 */
public record CalibrationData(List<int[]> samples, String source) {

    public CalibrationData {
        samples = List.copyOf(samples);
        if (samples.isEmpty()) throw new IllegalArgumentException("no calibration samples");
    }

    public int size() {
        return samples.size();
    }

    public long tokens() {
        long n = 0;
        for (int[] s : samples) n += s.length;
        return n;
    }

    /** Reads UTF-8 text files; a folder contributes its regular files in name order. */
    public static List<String> readTexts(List<Path> paths) {
        List<Path> files = new ArrayList<>();
        for (Path p : paths) {
            if (Files.isDirectory(p)) {
                try (Stream<Path> s = Files.list(p)) {
                    s.filter(Files::isRegularFile).sorted().forEach(files::add);
                } catch (IOException e) {
                    throw new LatheException(p, "cannot list calibration folder: " + e.getMessage(), e);
                }
            } else {
                files.add(p);
            }
        }
        if (files.isEmpty()) throw new LatheException("no calibration text files in " + paths);
        List<String> texts = new ArrayList<>();
        for (Path f : files) {
            try {
                byte[] b = Files.readAllBytes(f);
                texts.add(StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(b)).toString());
            } catch (CharacterCodingException e) {
                throw new LatheException(f, "calibration text is not valid UTF-8");
            } catch (IOException e) {
                throw new LatheException(f, "cannot read calibration text: " + e.getMessage(), e);
            }
        }
        return texts;
    }

    /**
     * {@code samples} windows of {@code seqLen} tokens drawn uniformly (seeded) from the tokenized texts; each
     * window starts with BOS when the tokenizer adds one (BOS + seqLen-1 text tokens). Windows never cross
     * a file boundary.
     */
    public static CalibrationData randomWindows(List<Path> files, Tokenizer tok, int samples, int seqLen, long seed) {
        if (samples < 1) throw new LatheException("number of calibration samples must be >= 1, got " + samples);
        if (seqLen < 2) throw new LatheException("calibration sequence length must be >= 2, got " + seqLen);
        List<String> texts = readTexts(files);
        boolean bos = tok.addBos();
        int body = bos ? seqLen - 1 : seqLen;
        List<int[]> ids = new ArrayList<>();
        long windows = 0, total = 0;
        for (String t : texts) {
            int[] e = tok.encode(t, false, false);
            total += e.length;
            if (e.length >= body) {
                ids.add(e);
                windows += e.length - body + 1;
            }
        }
        if (windows == 0) {
            throw new LatheException("too few calibration tokens: " + files + " give " + total + " tokens, one sample needs " + body);
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        List<int[]> out = new ArrayList<>(samples);
        for (int s = 0; s < samples; s++) {
            long k = rnd.nextLong(windows);
            for (int[] e : ids) {
                long w = e.length - body + 1;
                if (k < w) {
                    int[] seq = new int[seqLen];
                    int o = 0;
                    if (bos) seq[o++] = tok.bosId();
                    System.arraycopy(e, (int) k, seq, o, body);
                    out.add(seq);
                    break;
                }
                k -= w;
            }
        }
        return new CalibrationData(out, names(files));
    }

    /**
     * llama-imatrix's sampling: the whole text tokenized (with BOS if the tokenizer adds one), cut into
     * {@code floor(n / ctx)} consecutive chunks of {@code ctx} tokens, the first token of each replaced by BOS;
     * at most {@code maxChunks} (all when < 1).
     */
    public static CalibrationData chunks(Path file, Tokenizer tok, int ctx, int maxChunks) {
        if (ctx < 2) throw new LatheException("chunk length must be >= 2, got " + ctx);
        String text = readTexts(List.of(file)).getFirst();
        if (text.endsWith("\n")) text = text.substring(0, text.length() - 1);
        int[] ids = tok.encode(text, true, false);
        int n = ids.length / ctx;
        if (maxChunks > 0) n = Math.min(n, maxChunks);
        if (n < 1) throw new LatheException(file, "too few calibration tokens: " + ids.length + ", one chunk needs " + ctx);
        List<int[]> out = new ArrayList<>(n);
        for (int c = 0; c < n; c++) {
            int[] s = new int[ctx];
            System.arraycopy(ids, c * ctx, s, 0, ctx);
            if (tok.addBos()) s[0] = tok.bosId();
            out.add(s);
        }
        return new CalibrationData(out, file.toString());
    }

    private static String names(List<Path> files) {
        StringBuilder b = new StringBuilder();
        for (Path p : files) {
            if (!b.isEmpty()) b.append(',');
            b.append(p);
        }
        return b.toString();
    }
}
