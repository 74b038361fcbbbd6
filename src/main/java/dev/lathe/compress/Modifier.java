package dev.lathe.compress;

/**
 * One compression step of a recipe (llm-compressor's "modifier"): it sees each decoder block in turn,
 * with the calibration activations entering that block (produced by the already-compressed blocks before
 * it), and may transform the block's weights (AWQ scaling) or quantize them (RTN, GPTQ). A recipe is a list
 * of modifiers applied in order to every block; see {@link Calibrator#run}.
 */
public interface Modifier {
    String name();

    /** Works on block {@code ctx.weights().layer()}. */
    void applyToBlock(BlockContext ctx);

    /** Called once after the last block, for the token embedding and the output head. */
    default void finish(ModelContext ctx) {}

    /** Extra passes over the calibration samples this modifier causes per block (for the ETA). */
    default int passesPerBlock() {
        return 0;
    }
}
