package dev.lathe;

import java.nio.file.Path;

/**
 * The one error type for bad input (corrupt or truncated files, wrong magic, absurd shapes, missing
 * tensors, NaN/Inf, bad recipes). The message always names the file (when there is one) and the problem;
 * the CLI prints it on one line and exits with status 2.
 */
public class LatheException extends RuntimeException {
    private final Path file;

    public LatheException(String message) {
        this(null, message, null);
    }

    public LatheException(Path file, String message) {
        this(file, message, null);
    }

    public LatheException(Path file, String message, Throwable cause) {
        super(file == null ? message : file + ": " + message, cause);
        this.file = file;
    }

    /** The file the problem is in, or null. */
    public Path file() {
        return file;
    }
}
