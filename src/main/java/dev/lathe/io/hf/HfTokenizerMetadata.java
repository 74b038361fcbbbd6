package dev.lathe.io.hf;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufValue;
import dev.lathe.io.gguf.GgufValueType;
import dev.lathe.io.gguf.GgufWriter;
import dev.lathe.model.ModelConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Writes the {@code tokenizer.ggml.*} GGUF keys from a Hugging Face tokenizer.json (plus
 * tokenizer_config.json and config.json for special tokens), following convert_hf_to_gguf.py:
 * <ul>
 * <li>SentencePiece-style BPE with byte fallback (model BPE, byte_fallback, decoder Sequence; Llama 2,
 *     Mistral): {@code LlamaHfVocab}: model "llama", pre "default", base vocabulary by id with score -1000,
 *     type BYTE for {@code <0xXX>}, CONTROL for special tokens, NORMAL otherwise; added tokens after the base
 *     vocabulary (CONTROL if special, else USER_DEFINED).</li>
 * <li>byte-level BPE (Llama 3, Qwen2): {@code _set_vocab_gpt2}: model "gpt2", tokens 0..vocab_size-1
 *     ({@code [PADi]} UNUSED for holes), added tokens CONTROL (special or special-looking) or USER_DEFINED,
 *     merges. The pre-tokenizer name, which llama.cpp derives from a hash of a reference tokenization, is
 *     chosen from the architecture and the pre-tokenizer regex instead ("qwen2", "llama-bpe", "default").</li>
 * </ul>
 * Then the special token ids (bos, eos, unk, sep, pad, cls, mask), add_bos/add_eos, chat_template and
 * add_space_prefix, as gguf-py's SpecialVocab does.
 */
public final class HfTokenizerMetadata {
    public static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;
    private static final Pattern BYTE_TOKEN = Pattern.compile("<0x[0-9A-Fa-f]{2}>");
    private static final String[] SPECIAL_TYPES = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};

    private HfTokenizerMetadata() {}

    private record Added(int id, String content, boolean special) {}

    /**
     * Adds the tokenizer keys for the tokenizer in {@code folder} to {@code w}; returns false (and adds
     * nothing) when the folder has no tokenizer.json.
     */
    public static boolean addTo(Path folder, ModelConfig c, GgufWriter w) {
        Path tj = folder.resolve("tokenizer.json");
        if (!Files.isRegularFile(tj)) return false;
        JsonNode root = HfWeightSource.readJson(tj);
        JsonNode model = root.path("model");
        if (!model.path("type").asText("").equals("BPE")) {
            throw new LatheException(tj, "unsupported tokenizer model type '" + model.path("type").asText("") + "' (BPE is supported)");
        }
        JsonNode vocabNode = model.path("vocab");
        if (!vocabNode.isObject()) throw new LatheException(tj, "model.vocab is not an object");
        Map<Integer, String> byId = new HashMap<>();
        int baseSize = 0;
        for (Iterator<Map.Entry<String, JsonNode>> it = vocabNode.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().canConvertToInt() || e.getValue().asInt() < 0 || e.getValue().asInt() >= 1 << 22) {
                throw new LatheException(tj, "token '" + e.getKey() + "' has invalid id " + e.getValue());
            }
            int id = e.getValue().asInt();
            byId.put(id, e.getKey());
            baseSize = Math.max(baseSize, id + 1);
        }
        List<Added> added = new ArrayList<>();
        for (JsonNode a : root.path("added_tokens")) {
            if (!a.path("id").canConvertToInt() || a.path("id").asInt() < 0 || a.path("id").asInt() >= 1 << 22 || !a.path("content").isTextual()) {
                throw new LatheException(tj, "malformed added_tokens entry " + a);
            }
            added.add(new Added(a.get("id").asInt(), a.get("content").asText(), a.path("special").asBoolean(false)));
        }
        Path tcPath = folder.resolve("tokenizer_config.json");
        JsonNode tc = Files.isRegularFile(tcPath) ? HfWeightSource.readJson(tcPath) : null;

        boolean byteFallback = model.path("byte_fallback").asBoolean(false);
        boolean spm = byteFallback && root.path("decoder").path("type").asText("").equals("Sequence");
        List<String> tokens = new ArrayList<>();
        List<Integer> types = new ArrayList<>();
        List<Float> scores = new ArrayList<>();
        Set<Integer> specialIds = new HashSet<>();
        for (Added a : added) if (a.special()) specialIds.add(a.id());
        if (spm) {
            Set<Integer> addedBeyond = new HashSet<>();
            for (Added a : added) if (a.id() >= baseSize) addedBeyond.add(a.id());
            for (int i = 0; i < baseSize; i++) {
                if (addedBeyond.contains(i)) continue;
                String t = byId.get(i);
                if (t == null) {
                    for (Added a : added) if (a.id() == i) t = a.content();
                }
                if (t == null) throw new LatheException(tj, "vocabulary has no token with id " + i);
                tokens.add(t);
                scores.add(-1000f);
                types.add(BYTE_TOKEN.matcher(t).matches() ? BYTE : specialIds.contains(i) ? CONTROL : NORMAL);
            }
            final int base = baseSize;
            added.stream().filter(a -> a.id() >= base).sorted((x, y) -> Integer.compare(x.id(), y.id())).forEach(a -> {
                tokens.add(a.content());
                scores.add(-1000f);
                types.add(a.special() ? CONTROL : USER_DEFINED);
            });
            w.setString("tokenizer.ggml.model", "llama");
            w.setString("tokenizer.ggml.pre", "default");
            w.setStrings("tokenizer.ggml.tokens", tokens.toArray(String[]::new));
            float[] s = new float[scores.size()];
            for (int i = 0; i < s.length; i++) s[i] = scores.get(i);
            w.setFloats("tokenizer.ggml.scores", s);
        } else {
            Map<Integer, Added> addedById = new HashMap<>();
            for (Added a : added) addedById.put(a.id(), a);
            int n = c.vocabSize();
            int maxId = Math.max(baseSize - 1, added.stream().mapToInt(Added::id).max().orElse(-1));
            if (maxId >= n) throw new LatheException(tj, "token id " + maxId + " is outside the model's vocabulary of " + n);
            for (int i = 0; i < n; i++) {
                Added a = addedById.get(i);
                String t = a != null ? a.content() : byId.get(i);
                if (t == null) {
                    tokens.add("[PAD" + i + "]");
                    types.add(UNUSED);
                } else if (a != null) {
                    if (a.special() || looksSpecial(t)) {
                        types.add(CONTROL);
                    } else {
                        t = t.replace("\u2581", " ");
                        types.add(USER_DEFINED);
                    }
                    tokens.add(t);
                } else {
                    tokens.add(t);
                    types.add(NORMAL);
                }
            }
            w.setString("tokenizer.ggml.model", "gpt2");
            w.setString("tokenizer.ggml.pre", preTokenizerName(c, root));
            w.setStrings("tokenizer.ggml.tokens", tokens.toArray(String[]::new));
        }
        int[] tt = new int[types.size()];
        for (int i = 0; i < tt.length; i++) tt[i] = types.get(i);
        w.setInts("tokenizer.ggml.token_type", tt);
        if (!spm) {
            List<String> merges = merges(tj, model.path("merges"));
            if (!merges.isEmpty()) w.setStrings("tokenizer.ggml.merges", merges.toArray(String[]::new));
        }
        specialTokens(folder, tc, added, tokens.size(), w);
        if (tc != null && tc.has("add_prefix_space") && tc.get("add_prefix_space").isBoolean()) {
            w.setBool("tokenizer.ggml.add_space_prefix", tc.get("add_prefix_space").asBoolean());
        }
        return true;
    }

    private static boolean looksSpecial(String t) {
        return t.equals("<pad>") || t.equals("<mask>") || t.equals("<2mass>") || t.equals("[@BOS@]")
                || (t.startsWith("<|") && t.endsWith("|>")) || (t.startsWith("<\uff5c") && t.endsWith("\uff5c>"))
                || (t.startsWith("<unused") && t.endsWith(">"));
    }

    private static String preTokenizerName(ModelConfig c, JsonNode root) {
        if (c.arch().equals("qwen2")) return "qwen2";
        String pre = root.path("pre_tokenizer").toString();
        if (pre.contains("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}")) return "llama-bpe";
        return "default";
    }

    private static List<String> merges(Path tj, JsonNode m) {
        List<String> out = new ArrayList<>();
        if (!m.isArray()) return out;
        for (JsonNode x : m) {
            if (x.isTextual()) {
                out.add(x.asText());
            } else if (x.isArray() && x.size() == 2 && x.get(0).isTextual() && x.get(1).isTextual()) {
                // transformers >= 4.45 pair format; spaces inside a part are written as U+0120 like gguf-py does
                out.add(x.get(0).asText().replace(" ", "\u0120") + " " + x.get(1).asText().replace(" ", "\u0120"));
            } else {
                throw new LatheException(tj, "unknown merges format: " + x);
            }
        }
        return out;
    }

    private static void specialTokens(Path folder, JsonNode tc, List<Added> added, int nVocab, GgufWriter w) {
        Map<String, Integer> ids = new LinkedHashMap<>();
        Map<String, Boolean> addFlags = new LinkedHashMap<>();
        String chatTemplate = null;
        if (tc != null) {
            if (tc.path("chat_template").isTextual()) chatTemplate = tc.get("chat_template").asText();
            for (String typ : SPECIAL_TYPES) {
                JsonNode add = tc.get("add_" + typ + "_token");
                if (add != null && add.isBoolean()) addFlags.put(typ, add.asBoolean());
                JsonNode e = tc.get(typ + "_token");
                String content = e == null ? null : e.isTextual() ? e.asText() : e.path("content").isTextual() ? e.path("content").asText() : null;
                if (content == null) continue;
                for (Added a : added) {
                    if (a.content().equals(content)) {
                        if (a.id() < nVocab) ids.putIfAbsent(typ, a.id());
                        break;
                    }
                }
            }
        }
        Path cfg = folder.resolve("config.json");
        if (Files.isRegularFile(cfg)) {
            JsonNode c = HfWeightSource.readJson(cfg);
            for (String typ : SPECIAL_TYPES) {
                JsonNode v = c.get(typ + "_token_id");
                if (v != null && v.isInt() && v.asInt() >= 0 && v.asInt() < nVocab) ids.putIfAbsent(typ, v.asInt());
            }
        }
        Map<String, String> keyOf = Map.of("bos", "bos_token_id", "eos", "eos_token_id", "unk", "unknown_token_id", "sep", "seperator_token_id",
                "pad", "padding_token_id", "mask", "mask_token_id");
        // gguf-py has no key for cls and skips it
        ids.forEach((typ, id) -> {
            if (keyOf.containsKey(typ)) w.set("tokenizer.ggml." + keyOf.get(typ), GgufValue.u32(id));
        });
        addFlags.forEach((typ, v) -> {
            if (typ.equals("bos") || typ.equals("eos")) w.set("tokenizer.ggml.add_" + typ + "_token", GgufValue.bool(v));
        });
        if (chatTemplate != null) w.set("tokenizer.chat_template", GgufValue.of(GgufValueType.STRING, chatTemplate));
    }
}
