package dev.lathe.io;

/** Progress callback of long writes and conversions: {@code done} of {@code total} units (bytes or tensors) of a stage. */
@FunctionalInterface
public interface Progress {
    Progress NONE = (stage, done, total) -> { };

    void update(String stage, long done, long total);
}
