package dev.lathe.train;

import dev.lathe.LatheException;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * UTF-8 text documents from files and folders (folders are walked recursively, files taken in sorted path
 * order). Files are decoded as a stream of 64 KiB chunks; invalid UTF-8 raises {@link LatheException} naming
 * the file and the byte offset. A document is a whole file, or, with {@code splitOnBlankLines}, each run of
 * text between blank lines.
 */
public final class TextCorpus {
    /** One document: its text, the file it came from and its number in the corpus (0-based). */
    public record Document(int index, Path file, String text) {}

    private final List<Path> files;
    private final boolean splitOnBlankLines;

    private TextCorpus(List<Path> files, boolean splitOnBlankLines) {
        this.files = List.copyOf(files);
        this.splitOnBlankLines = splitOnBlankLines;
    }

    /** The corpus of every regular file under the given files and folders (hidden files skipped). */
    public static TextCorpus of(List<Path> roots, boolean splitOnBlankLines) {
        List<Path> files = new ArrayList<>();
        for (Path root : roots) {
            if (Files.isRegularFile(root)) {
                files.add(root);
            } else if (Files.isDirectory(root)) {
                try (Stream<Path> s = Files.walk(root)) {
                    s.filter(Files::isRegularFile)
                            .filter(p -> !p.getFileName().toString().startsWith("."))
                            .sorted()
                            .forEach(files::add);
                } catch (IOException e) {
                    throw new LatheException(root, "cannot list folder: " + e.getMessage(), e);
                }
            } else {
                throw new LatheException(root, "no such file or folder");
            }
        }
        if (files.isEmpty()) throw new LatheException(roots.isEmpty() ? null : roots.get(0), "no text files found");
        return new TextCorpus(files, splitOnBlankLines);
    }

    public List<Path> files() {
        return files;
    }

    public boolean splitOnBlankLines() {
        return splitOnBlankLines;
    }

    /** Streams every document in order (one file in memory at a time). */
    public void forEach(Consumer<Document> sink) {
        int index = 0;
        for (Path f : files) {
            String text = readUtf8(f);
            if (!splitOnBlankLines) {
                sink.accept(new Document(index++, f, text));
                continue;
            }
            for (String para : text.split("\\R[ \\t]*\\R(?:[ \\t]*\\R)*")) {
                String p = para.strip();
                if (!p.isEmpty()) sink.accept(new Document(index++, f, p));
            }
        }
    }

    /** Reads a whole file as strict UTF-8 (a leading byte-order mark is dropped). */
    public static String readUtf8(Path file) {
        CharsetDecoder dec = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        StringBuilder sb = new StringBuilder();
        ByteBuffer in = ByteBuffer.allocate(1 << 16);
        CharBuffer out = CharBuffer.allocate(1 << 16);
        long consumed = 0; // bytes of the file before in's position 0
        try (InputStream is = Files.newInputStream(file)) {
            boolean eof = false;
            while (true) {
                if (!eof) {
                    int r = is.read(in.array(), in.arrayOffset() + in.position(), in.remaining());
                    if (r < 0) eof = true;
                    else in.position(in.position() + r);
                }
                in.flip();
                CoderResult cr = dec.decode(in, out, eof);
                if (cr.isError()) {
                    throw new LatheException(file, "invalid UTF-8 at byte offset " + (consumed + in.position()));
                }
                out.flip();
                sb.append(out);
                out.clear();
                consumed += in.position();
                in.compact();
                if (eof && !cr.isOverflow()) break;
            }
            CoderResult cr = dec.flush(out);
            if (cr.isError()) throw new LatheException(file, "invalid UTF-8 at byte offset " + consumed);
            out.flip();
            sb.append(out);
        } catch (IOException e) {
            throw new LatheException(file, "cannot read: " + e.getMessage(), e);
        }
        if (!sb.isEmpty() && sb.charAt(0) == '\uFEFF') sb.deleteCharAt(0);
        return sb.toString();
    }
}
