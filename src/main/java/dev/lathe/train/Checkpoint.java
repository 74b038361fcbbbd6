package dev.lathe.train;

import dev.lathe.io.AtomicOutput;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lathe.LatheException;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeScaling;
import dev.lathe.model.RopeStyle;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * A training checkpoint: model config, counters, RNG and data position, and named float arrays (parameters
 * and optimizer moments). File layout, all little-endian:
 * <pre>
 *   8 bytes  magic "LATHECKP"
 *   u32      format version (1)
 *   u32      header length H
 *   H bytes  UTF-8 JSON header: config, counters, tensor names and lengths (in data order)
 *   data     each tensor's floats (f32), in header order
 *   u64      CRC-32C of every byte before it
 * </pre>
 * Written to a temporary file in the same folder and renamed atomically; reading checks the magic, the
 * exact file size and the checksum, so a truncated or corrupt file raises {@link LatheException}.
 */
public final class Checkpoint {
    private static final byte[] MAGIC = "LATHECKP".getBytes(StandardCharsets.US_ASCII);
    private static final int VERSION = 1;
    private static final int MAX_HEADER = 64 << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * What a checkpoint holds.
     *
     * @param step           optimizer steps done
     * @param rngState       state of the data sampler's generator at the start of the current epoch
     * @param dataEpoch      data epoch in progress
     * @param dataIndex      next sequence index within the epoch
     * @param tensors        named float arrays in a fixed order
     * @param info           free-form text values (seed, notes)
     */
    public record State(ModelConfig config, long step, long rngState, long dataEpoch, long dataIndex,
                        Map<String, float[]> tensors, Map<String, String> info) {
        public State {
            tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
            info = Collections.unmodifiableMap(new LinkedHashMap<>(info));
        }

        public float[] tensor(Path file, String name) {
            float[] t = tensors.get(name);
            if (t == null) throw new LatheException(file, "checkpoint has no tensor '" + name + "'");
            return t;
        }
    }

    private Checkpoint() {}

    /** Writes atomically (temporary file in the same folder, then rename). */
    public static void save(Path file, State s) {
        Path abs = file.toAbsolutePath();
        ObjectNode h = JSON.createObjectNode();
        h.set("config", configJson(s.config()));
        h.put("step", s.step());
        h.put("rng_state", s.rngState());
        h.put("data_epoch", s.dataEpoch());
        h.put("data_index", s.dataIndex());
        ObjectNode info = h.putObject("info");
        s.info().forEach(info::put);
        ArrayNode ts = h.putArray("tensors");
        for (Map.Entry<String, float[]> e : s.tensors().entrySet()) {
            ObjectNode t = ts.addObject();
            t.put("name", e.getKey());
            t.put("length", e.getValue().length);
        }
        byte[] header;
        try {
            header = JSON.writeValueAsBytes(h);
        } catch (IOException e) {
            throw new LatheException(file, "cannot encode checkpoint header: " + e.getMessage(), e);
        }
        AtomicOutput.write(abs, out -> {
            out.bytes(MAGIC);
            out.i32(VERSION);
            out.i32(header.length);
            out.bytes(header);
            for (float[] a : s.tensors().values()) out.floats(a, 0, a.length);
            out.i64(out.checksum());
        });
    }

    /** Reads and validates a checkpoint. */
    public static State load(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 16 + 8) throw new LatheException(file, "not a Lathe checkpoint: file is only " + size + " bytes");
            CRC32C crc = new CRC32C();
            ByteBuffer pre = read(ch, 16, file, crc);
            byte[] magic = new byte[8];
            pre.get(magic);
            if (!java.util.Arrays.equals(magic, MAGIC)) throw new LatheException(file, "not a Lathe checkpoint: wrong magic");
            int version = pre.getInt();
            if (version != VERSION) throw new LatheException(file, "unsupported checkpoint version " + version);
            int hl = pre.getInt();
            if (hl <= 0 || hl > MAX_HEADER || 16L + hl + 8 > size) {
                throw new LatheException(file, "corrupt or truncated checkpoint: header length " + hl + " in a file of " + size + " bytes");
            }
            ByteBuffer hb = read(ch, hl, file, crc);
            JsonNode h;
            try {
                h = JSON.readTree(hb.array());
            } catch (IOException e) {
                throw new LatheException(file, "corrupt checkpoint header: " + e.getMessage());
            }
            JsonNode ts = h.path("tensors");
            if (!ts.isArray()) throw new LatheException(file, "corrupt checkpoint header: no tensor list");
            long dataBytes = 0;
            for (JsonNode t : ts) {
                long len = t.path("length").asLong(-1);
                if (len < 0 || len > Integer.MAX_VALUE - 16 || !t.path("name").isTextual()) {
                    throw new LatheException(file, "corrupt checkpoint header: bad tensor entry " + t);
                }
                dataBytes += 4 * len;
            }
            long expected = 16L + hl + dataBytes + 8;
            if (size != expected) {
                throw new LatheException(file, (size < expected ? "truncated" : "corrupt") + " checkpoint: " + size
                        + " bytes, expected " + expected);
            }
            Map<String, float[]> tensors = new LinkedHashMap<>();
            ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
            for (JsonNode t : ts) {
                float[] a = new float[t.path("length").asInt()];
                for (int off = 0; off < a.length; ) {
                    int n = Math.min(buf.capacity() / 4, a.length - off);
                    buf.clear().limit(4 * n);
                    while (buf.hasRemaining()) {
                        if (ch.read(buf) < 0) throw new LatheException(file, "truncated checkpoint");
                    }
                    buf.flip();
                    crc.update(buf.duplicate());
                    buf.asFloatBuffer().get(a, off, n);
                    off += n;
                }
                if (tensors.put(t.path("name").asText(), a) != null) {
                    throw new LatheException(file, "corrupt checkpoint header: tensor '" + t.path("name").asText() + "' appears twice");
                }
            }
            ByteBuffer tail = read(ch, 8, file, null);
            long stored = tail.getLong();
            if (stored != crc.getValue()) throw new LatheException(file, "corrupt checkpoint: checksum mismatch");
            Map<String, String> info = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = h.path("info").fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                info.put(e.getKey(), e.getValue().asText());
            }
            return new State(configFrom(file, h.path("config")), req(file, h, "step"), req(file, h, "rng_state"),
                    req(file, h, "data_epoch"), req(file, h, "data_index"), tensors, info);
        } catch (IOException e) {
            throw new LatheException(file, "cannot read checkpoint: " + e.getMessage(), e);
        }
    }

    private static ByteBuffer read(FileChannel ch, int n, Path file, CRC32C crc) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) throw new LatheException(file, "truncated checkpoint");
        }
        b.flip();
        if (crc != null) crc.update(b.duplicate());
        return b;
    }

    private static long req(Path file, JsonNode h, String key) {
        JsonNode v = h.get(key);
        if (v == null || !v.canConvertToLong()) throw new LatheException(file, "corrupt checkpoint header: '" + key + "' missing");
        return v.asLong();
    }

    static ObjectNode configJson(ModelConfig c) {
        ObjectNode o = JSON.createObjectNode();
        o.put("arch", c.arch());
        o.put("dim", c.dim());
        o.put("n_layers", c.nLayers());
        o.put("n_heads", c.nHeads());
        o.put("n_kv_heads", c.nKvHeads());
        o.put("head_dim", c.headDim());
        o.put("ffn_dim", c.ffnDim());
        o.put("vocab_size", c.vocabSize());
        o.put("norm_eps", c.normEps());
        o.put("rope_theta", c.ropeTheta());
        o.put("rope_style", c.ropeStyle().name());
        if (c.ropeScaling() != null) {
            ObjectNode s = o.putObject("rope_scaling");
            s.put("factor", c.ropeScaling().factor());
            s.put("low_freq_factor", c.ropeScaling().lowFreqFactor());
            s.put("high_freq_factor", c.ropeScaling().highFreqFactor());
            s.put("original_context_length", c.ropeScaling().originalContextLength());
        }
        o.put("context_length", c.contextLength());
        o.put("tied_embeddings", c.tiedEmbeddings());
        o.put("qkv_bias", c.qkvBias());
        return o;
    }

    static ModelConfig configFrom(Path file, JsonNode o) {
        if (!o.isObject()) throw new LatheException(file, "corrupt checkpoint header: no model config");
        try {
            RopeScaling rs = null;
            JsonNode s = o.path("rope_scaling");
            if (s.isObject()) {
                rs = new RopeScaling((float) s.path("factor").asDouble(), (float) s.path("low_freq_factor").asDouble(),
                        (float) s.path("high_freq_factor").asDouble(), s.path("original_context_length").asInt());
            }
            return new ModelConfig(o.path("arch").asText(), o.path("dim").asInt(), o.path("n_layers").asInt(),
                    o.path("n_heads").asInt(), o.path("n_kv_heads").asInt(), o.path("head_dim").asInt(), o.path("ffn_dim").asInt(),
                    o.path("vocab_size").asInt(), (float) o.path("norm_eps").asDouble(), (float) o.path("rope_theta").asDouble(),
                    RopeStyle.valueOf(o.path("rope_style").asText()), rs, o.path("context_length").asInt(),
                    o.path("tied_embeddings").asBoolean(), o.path("qkv_bias").asBoolean()).validate(file);
        } catch (IllegalArgumentException e) {
            throw new LatheException(file, "corrupt checkpoint header: " + e.getMessage());
        }
    }
}
