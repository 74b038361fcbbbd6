package dev.lathe;

import org.junit.jupiter.api.Assumptions;

import java.nio.file.Files;
import java.nio.file.Path;

/** Locates ../shared (system property lathe.shared, set by the build) and skips a test when it is absent. */
public final class Fixtures {
    private Fixtures() {}

    public static Path shared() {
        String p = System.getProperty("lathe.shared", "../shared");
        return Path.of(p).toAbsolutePath().normalize();
    }

    /** A path under ../shared/fixtures; the calling test is skipped (with a message) if it does not exist. */
    public static Path fixture(String relative) {
        Path p = shared().resolve("fixtures").resolve(relative);
        Assumptions.assumeTrue(Files.exists(p), "fixture absent, skipping: " + p);
        return p;
    }

    /** A path under ../shared/data; skipped if absent. */
    public static Path data(String relative) {
        Path p = shared().resolve("data").resolve(relative);
        Assumptions.assumeTrue(Files.exists(p), "data absent, skipping: " + p);
        return p;
    }
}
