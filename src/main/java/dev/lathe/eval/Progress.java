package dev.lathe.eval;

/** Progress of a chunked evaluation: called after each chunk with the running value and an ETA. */
@FunctionalInterface
public interface Progress {
    /**
     * @param done        chunks finished
     * @param total       chunks in all
     * @param running     the running estimate (perplexity, or mean KLD)
     * @param etaSeconds  estimated seconds left (from the mean time per chunk so far)
     */
    void update(int done, int total, double running, double etaSeconds);

    Progress NONE = (d, t, r, e) -> {};
}
