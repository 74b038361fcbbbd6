package dev.lathe.io.llama2c;

import dev.lathe.LatheException;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import dev.lathe.model.TensorNames;
import dev.lathe.model.TensorMapSource;
import dev.lathe.tensor.GgmlType;
import dev.lathe.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * A llama2.c legacy ("v0") checkpoint as a {@link WeightSource}: 7 little-endian int32 (dim, hidden_dim,
 * n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate classifier
 * follows the freq_cis tables, otherwise the classifier is the token embedding), then float32 weights
 * token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real, freq_cis_imag
 * [, wcls]. Tensors are F32 views of the mapping under canonical GGUF names; the freq_cis tables are
 * skipped. Arch llama, {@link RopeStyle#INTERLEAVED} (the weights are not permuted), eps 1e-5, theta 10000.
 * The file size must match the header exactly.
 */
public final class Llama2cWeightSource extends TensorMapSource {
    public static final int HEADER_BYTES = 28;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The decoded header. */
    public record Header(int dim, int hiddenDim, int nLayers, int nHeads, int nKvHeads, int vocabSize, int seqLen, boolean sharedClassifier) {}

    private final Header header;

    private Llama2cWeightSource(Path path, Arena arena, Header header, ModelConfig config, Map<String, Tensor> tensors) {
        super(path, config, tensors, arena::close);
        this.header = header;
    }

    /**
     * Reads and checks the header and returns the exact file size it implies, or throws a LatheException
     * naming {@code path} when the header is impossible.
     */
    public static long expectedFileSize(Path path, Header h) {
        check(path, h.dim() > 0 && h.dim() <= 1 << 16, "dim " + h.dim());
        check(path, h.hiddenDim() > 0 && h.hiddenDim() <= 1 << 20, "hidden_dim " + h.hiddenDim());
        check(path, h.nLayers() > 0 && h.nLayers() <= 1024, "n_layers " + h.nLayers());
        check(path, h.nHeads() > 0 && h.nHeads() <= 1024 && h.dim() % h.nHeads() == 0, "n_heads " + h.nHeads() + " for dim " + h.dim());
        check(path, h.nKvHeads() > 0 && h.nKvHeads() <= h.nHeads() && h.nHeads() % h.nKvHeads() == 0, "n_kv_heads " + h.nKvHeads() + " for n_heads " + h.nHeads());
        int headSize = h.dim() / h.nHeads();
        check(path, headSize % 2 == 0, "head size " + headSize + " (must be even)");
        check(path, h.vocabSize() > 0 && h.vocabSize() <= 1 << 22, "vocab_size " + h.vocabSize());
        check(path, h.seqLen() > 0 && h.seqLen() <= 1 << 24, "seq_len " + h.seqLen());
        long dim = h.dim(), hid = h.hiddenDim(), L = h.nLayers(), kvDim = (long) h.nKvHeads() * headSize;
        long floats = h.vocabSize() * dim            // token_embedding
                + L * dim                            // rms_att
                + L * dim * dim                      // wq
                + 2 * L * kvDim * dim                // wk, wv
                + L * dim * dim                      // wo
                + L * dim                            // rms_ffn
                + 3 * L * hid * dim                  // w1, w2, w3
                + dim                                // rms_final
                + (long) h.seqLen() * headSize;      // freq_cis_real + freq_cis_imag (seq_len * head_size/2 each)
        if (!h.sharedClassifier()) floats += h.vocabSize() * dim;
        return HEADER_BYTES + 4 * floats;
    }

    private static void check(Path p, boolean ok, String what) {
        if (!ok) throw new LatheException(p, "not a valid llama2.c checkpoint: impossible header value " + what);
    }

    /** Decodes the 7-int header from the first 28 bytes. */
    public static Header readHeader(Path path, MemorySegment seg) {
        if (seg.byteSize() < HEADER_BYTES) throw new LatheException(path, "not a llama2.c checkpoint: only " + seg.byteSize() + " bytes (a header needs 28)");
        int[] v = new int[7];
        for (int i = 0; i < 7; i++) v[i] = seg.get(I32, 4L * i);
        boolean shared = v[5] > 0;
        int vocab = v[5] == Integer.MIN_VALUE ? -1 : Math.abs(v[5]);
        return new Header(v[0], v[1], v[2], v[3], v[4], vocab, v[6], shared);
    }

    /** True if the file's header is a plausible llama2.c header whose implied size equals the file size. */
    public static boolean looksLikeLlama2c(Path path) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            if (ch.size() < HEADER_BYTES) return false;
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            while (b.hasRemaining() && ch.read(b) > 0) { }
            if (b.hasRemaining()) return false;
            Header h = readHeader(path, MemorySegment.ofArray(b.array()));
            return expectedFileSize(path, h) == ch.size();
        } catch (IOException | LatheException e) {
            return false;
        }
    }

    /** True if the file starts with the magic of llama2.c's versioned exports (export.py --version 1/2): "ak42". */
    public static boolean isVersionedExport(Path path) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
            while (b.hasRemaining() && ch.read(b) > 0) { }
            return !b.hasRemaining() && b.getInt(0) == 0x616b3432;
        } catch (IOException e) {
            return false;
        }
    }

    public static Llama2cWeightSource open(Path path) {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment seg;
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                if (ch.size() < HEADER_BYTES) throw new LatheException(path, "not a llama2.c checkpoint: only " + ch.size() + " bytes (a header needs 28)");
                seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            } catch (IOException e) {
                throw new LatheException(path, "cannot read: " + e.getMessage(), e);
            }
            Header h = readHeader(path, seg);
            long expected = expectedFileSize(path, h);
            if (expected != seg.byteSize()) {
                throw new LatheException(path, "llama2.c header (dim " + h.dim() + ", hidden_dim " + h.hiddenDim() + ", layers " + h.nLayers() + ", heads " + h.nHeads()
                        + "/" + h.nKvHeads() + ", vocab " + h.vocabSize() + (h.sharedClassifier() ? " shared" : " separate") + " classifier, seq_len " + h.seqLen()
                        + ") implies " + expected + " bytes but the file has " + seg.byteSize() + (seg.byteSize() < expected ? "; the file is truncated" : ""));
            }
            int headSize = h.dim() / h.nHeads();
            ModelConfig cfg = new ModelConfig("llama", h.dim(), h.nLayers(), h.nHeads(), h.nKvHeads(), headSize, h.hiddenDim(), h.vocabSize(),
                    1e-5f, 10000f, RopeStyle.INTERLEAVED, null, h.seqLen(), h.sharedClassifier(), false).validate(path);
            Map<String, Tensor> t = new LinkedHashMap<>();
            long dim = h.dim(), hid = h.hiddenDim(), kvDim = (long) h.nKvHeads() * headSize;
            int L = h.nLayers();
            long[] pos = {HEADER_BYTES};
            java.util.function.BiFunction<String, long[], Tensor> take = (name, shape) -> {
                long bytes = 4 * Tensor.numElements(shape);
                Tensor x = new Tensor(name, GgmlType.F32, shape, seg.asSlice(pos[0], bytes));
                pos[0] += bytes;
                return x;
            };
            Tensor emb = take.apply(TensorNames.TOKEN_EMBD, new long[]{h.vocabSize(), dim});
            t.put(emb.name(), emb);
            perLayer(t, take, L, "attn_norm.weight", new long[]{dim});
            perLayer(t, take, L, "attn_q.weight", new long[]{dim, dim});
            perLayer(t, take, L, "attn_k.weight", new long[]{kvDim, dim});
            perLayer(t, take, L, "attn_v.weight", new long[]{kvDim, dim});
            perLayer(t, take, L, "attn_output.weight", new long[]{dim, dim});
            perLayer(t, take, L, "ffn_norm.weight", new long[]{dim});
            perLayer(t, take, L, "ffn_gate.weight", new long[]{hid, dim});
            perLayer(t, take, L, "ffn_down.weight", new long[]{dim, hid});
            perLayer(t, take, L, "ffn_up.weight", new long[]{hid, dim});
            Tensor norm = take.apply(TensorNames.OUTPUT_NORM, new long[]{dim});
            t.put(norm.name(), norm);
            pos[0] += 4L * h.seqLen() * headSize; // freq_cis_real, freq_cis_imag
            if (!h.sharedClassifier()) {
                Tensor out = take.apply(TensorNames.OUTPUT, new long[]{h.vocabSize(), dim});
                t.put(out.name(), out);
            }
            if (pos[0] != seg.byteSize()) throw new IllegalStateException("llama2.c layout arithmetic is inconsistent");
            // present in canonical order: token_embd, per block, output_norm, output
            Map<String, Tensor> ordered = new LinkedHashMap<>();
            ordered.put(TensorNames.TOKEN_EMBD, t.get(TensorNames.TOKEN_EMBD));
            for (int l = 0; l < L; l++) {
                for (String s : new String[]{"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                        "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"}) {
                    ordered.put(TensorNames.layer(l, s), t.get(TensorNames.layer(l, s)));
                }
            }
            ordered.put(TensorNames.OUTPUT_NORM, t.get(TensorNames.OUTPUT_NORM));
            if (t.containsKey(TensorNames.OUTPUT)) ordered.put(TensorNames.OUTPUT, t.get(TensorNames.OUTPUT));
            return new Llama2cWeightSource(path, arena, h, cfg, Collections.unmodifiableMap(ordered));
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static void perLayer(Map<String, Tensor> t, java.util.function.BiFunction<String, long[], Tensor> take, int layers, String suffix, long[] shape) {
        for (int l = 0; l < layers; l++) {
            Tensor x = take.apply(TensorNames.layer(l, suffix), shape);
            t.put(x.name(), x);
        }
    }

    public Header header() {
        return header;
    }
}
