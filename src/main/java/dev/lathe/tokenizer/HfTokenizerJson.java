package dev.lathe.tokenizer;

import dev.lathe.io.AtomicOutput;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lathe.LatheException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/** Reads and writes Hugging Face tokenizer.json / tokenizer_config.json. */
final class HfTokenizerJson {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory F = JsonNodeFactory.instance;
    private static final String META = "\u2581";

    private HfTokenizerJson() {}

    // ------------------------------------------------------------------ reading

    static Tokenizer read(Path json, Path config) {
        JsonNode root = parse(json);
        JsonNode cfg = config == null ? F.objectNode() : parse(config);
        if (!root.isObject()) throw new LatheException(json, "tokenizer.json is not a JSON object");
        JsonNode model = root.path("model");
        if (!model.isObject()) throw new LatheException(json, "tokenizer.json has no 'model' object");
        String type = model.path("type").asText("BPE");
        if (!"BPE".equals(type)) {
            throw new LatheException(json, "unsupported tokenizer model type '" + type + "' (only BPE is supported)");
        }
        for (String k : new String[]{"continuing_subword_prefix", "end_of_word_suffix"}) {
            if (model.path(k).isTextual() && !model.path(k).asText().isEmpty()) {
                throw new LatheException(json, "unsupported BPE model option " + k + " = '" + model.path(k).asText() + "'");
            }
        }
        JsonNode vocabNode = model.path("vocab");
        if (!vocabNode.isObject()) throw new LatheException(json, "model.vocab is not an object");

        Map<Integer, String> byId = new HashMap<>();
        int n = 0;
        for (Iterator<Map.Entry<String, JsonNode>> it = vocabNode.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().canConvertToInt() || e.getValue().asInt() < 0) {
                throw new LatheException(json, "model.vocab['" + e.getKey() + "'] is not a token id: " + e.getValue());
            }
            int id = e.getValue().asInt();
            if (byId.put(id, e.getKey()) != null) throw new LatheException(json, "model.vocab gives id " + id + " twice");
            n = Math.max(n, id + 1);
        }
        Map<Integer, Boolean> added = new HashMap<>();
        JsonNode addedTokens = root.path("added_tokens");
        if (!addedTokens.isMissingNode() && !addedTokens.isNull() && !addedTokens.isArray()) {
            throw new LatheException(json, "added_tokens is not an array");
        }
        for (JsonNode a : addedTokens) {
            if (!a.path("id").canConvertToInt() || !a.path("content").isTextual() || a.path("id").asInt() < 0) {
                throw new LatheException(json, "bad added_tokens entry: " + a);
            }
            int id = a.path("id").asInt();
            String content = a.path("content").asText();
            String prev = byId.put(id, content);
            if (prev != null && !prev.equals(content)) {
                throw new LatheException(json, "added token " + id + " '" + content + "' clashes with vocab token '" + prev + "'");
            }
            added.put(id, a.path("special").asBoolean(false));
            n = Math.max(n, id + 1);
        }
        if (n == 0) throw new LatheException(json, "empty vocabulary");
        if (n > 1 << 22) throw new LatheException(json, "absurd vocabulary size " + n);

        String[] merges = readMerges(json, model.path("merges"));
        JsonNode pre = root.path("pre_tokenizer");
        JsonNode norm = root.path("normalizer");
        boolean byteFallback = model.path("byte_fallback").asBoolean(false);
        boolean metaspace = hasType(pre, "Metaspace");
        boolean replaceSpace = hasReplace(norm, " ", META);
        boolean byteLevel = hasType(pre, "ByteLevel");
        boolean spm;
        if (byteLevel && !(metaspace || replaceSpace)) spm = false;
        else if (byteFallback || metaspace || replaceSpace) spm = true;
        else throw new LatheException(json, "unsupported tokenizer: neither SentencePiece-style (Metaspace/byte_fallback) "
                    + "nor byte-level BPE (ByteLevel pre-tokenizer)");

        String[] tokens = new String[n];
        TokenType[] types = new TokenType[n];
        String unkToken = model.path("unk_token").isTextual() ? model.path("unk_token").asText() : null;
        for (int i = 0; i < n; i++) {
            String t = byId.get(i);
            if (t == null) {
                tokens[i] = "[PAD" + i + "]";
                types[i] = TokenType.UNUSED;
                continue;
            }
            tokens[i] = t.isEmpty() ? "[EMPTY_" + i + "]" : t;
            Boolean special = added.get(i);
            if (special != null) types[i] = special ? TokenType.CONTROL : TokenType.USER_DEFINED;
            else if (t.equals(unkToken)) types[i] = TokenType.UNKNOWN;
            else if (spm && byteFallback && isByteToken(t)) types[i] = TokenType.BYTE;
            else types[i] = TokenType.NORMAL;
            if (t.equals(unkToken) && spm) types[i] = TokenType.UNKNOWN;
        }
        Map<String, Integer> ids = new HashMap<>();
        for (int i = 0; i < n; i++) ids.put(tokens[i], i);

        float[] scores = new float[n];
        String preName = null;
        String[] custom = null;
        boolean addSpacePrefix = false, ignoreMerges = false, cleanSpaces = false;
        if (spm) {
            // merge priority: a piece scores -(index of the first merge that makes it); pieces no merge makes
            // score below every merge result
            Arrays.fill(scores, Float.NaN);
            for (int r = 0; r < merges.length; r++) {
                String m = merges[r];
                int sp = m.indexOf(' ', 1);
                Integer id = ids.get(m.substring(0, sp) + m.substring(sp + 1));
                if (id != null && Float.isNaN(scores[id])) scores[id] = -r;
            }
            for (int i = 0; i < n; i++) {
                if (Float.isNaN(scores[i])) scores[i] = types[i] == TokenType.NORMAL ? -(float) (merges.length + i) : 0f;
            }
            preName = "default";
            addSpacePrefix = hasPrepend(norm) || metaspacePrefix(pre);
        } else {
            List<String> regexes = byteLevelRegexes(json, pre);
            preName = PreTokenizer.nameFor(regexes);
            if (preName == null) custom = regexes.toArray(String[]::new);
            boolean[] flags = Tokenizers.bpeFlags(preName);
            ignoreMerges = model.path("ignore_merges").asBoolean(false) || flags[1];
            // transformers decodes with the config's clean_up_tokenization_spaces; without it, llama.cpp's default
            JsonNode clean = cfg.path("clean_up_tokenization_spaces");
            cleanSpaces = clean.isBoolean() ? clean.asBoolean() : preName != null && flags[2];
        }

        int bos = tokenId(json, cfg, "bos_token", ids, spm ? ids.getOrDefault("<s>", -1) : -1);
        int eos = tokenId(json, cfg, "eos_token", ids, spm ? ids.getOrDefault("</s>", -1) : -1);
        int unk = tokenId(json, cfg, "unk_token", ids, unkToken != null ? ids.getOrDefault(unkToken, -1) : -1);
        int pad = tokenId(json, cfg, "pad_token", ids, -1);
        boolean addBos;
        if (cfg.path("add_bos_token").isBoolean()) addBos = cfg.path("add_bos_token").asBoolean();
        else if (template(root.path("post_processor")) != null) addBos = templateStartsWith(template(root.path("post_processor")), bos, ids);
        else addBos = spm || Tokenizers.bpeFlags(preName)[0];
        boolean addEos = cfg.path("add_eos_token").asBoolean(false);
        if (addBos && bos < 0) addBos = false;
        if (addEos && eos < 0) addEos = false;
        Vocabulary v = new Vocabulary(spm ? Vocabulary.SPM : Vocabulary.BPE, preName, tokens, scores, types,
                spm ? new String[0] : merges, bos, eos, unk, pad, -1, addBos, addEos, addSpacePrefix, ignoreMerges,
                cleanSpaces, custom);
        return Tokenizers.create(v, json);
    }

    private static JsonNode parse(Path p) {
        try {
            return JSON.readTree(Files.readString(p, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new LatheException(p, "invalid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new LatheException(p, "cannot read: " + e.getMessage(), e);
        }
    }

    private static boolean isByteToken(String t) {
        return t.length() == 6 && t.startsWith("<0x") && t.endsWith(">")
                && Character.digit(t.charAt(3), 16) >= 0 && Character.digit(t.charAt(4), 16) >= 0;
    }

    private static String[] readMerges(Path json, JsonNode merges) {
        if (merges.isMissingNode() || merges.isNull()) return new String[0];
        if (!merges.isArray()) throw new LatheException(json, "model.merges is not an array");
        String[] out = new String[merges.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode m = merges.get(i);
            if (m.isTextual() && m.asText().indexOf(' ', 1) > 0) {
                out[i] = m.asText();
            } else if (m.isArray() && m.size() == 2 && m.get(0).isTextual() && m.get(1).isTextual()) {
                out[i] = m.get(0).asText() + " " + m.get(1).asText();
            } else {
                throw new LatheException(json, "model.merges[" + i + "] is not a pair: " + m);
            }
        }
        return out;
    }

    /** The node or any node in its "pretokenizers"/"normalizers"/"decoders" list has this type. */
    private static boolean hasType(JsonNode n, String type) {
        for (JsonNode c : flatten(n)) if (type.equals(c.path("type").asText())) return true;
        return false;
    }

    private static List<JsonNode> flatten(JsonNode n) {
        List<JsonNode> out = new ArrayList<>();
        if (n == null || n.isMissingNode() || n.isNull()) return out;
        if ("Sequence".equals(n.path("type").asText())) {
            for (String k : new String[]{"pretokenizers", "normalizers", "decoders"}) {
                for (JsonNode c : n.path(k)) out.addAll(flatten(c));
            }
        } else {
            out.add(n);
        }
        return out;
    }

    private static boolean hasReplace(JsonNode norm, String from, String to) {
        for (JsonNode c : flatten(norm)) {
            if ("Replace".equals(c.path("type").asText()) && from.equals(c.path("pattern").path("String").asText(null))
                    && to.equals(c.path("content").asText())) return true;
        }
        return false;
    }

    private static boolean hasPrepend(JsonNode norm) {
        for (JsonNode c : flatten(norm)) {
            if ("Prepend".equals(c.path("type").asText()) && META.equals(c.path("prepend").asText())) return true;
        }
        return false;
    }

    private static boolean metaspacePrefix(JsonNode pre) {
        for (JsonNode c : flatten(pre)) {
            if (!"Metaspace".equals(c.path("type").asText())) continue;
            if (c.has("prepend_scheme")) return !"never".equals(c.path("prepend_scheme").asText());
            return c.path("add_prefix_space").asBoolean(true);
        }
        return false;
    }

    /** The regexes of a byte-level pre-tokenizer, in order. */
    private static List<String> byteLevelRegexes(Path json, JsonNode pre) {
        List<String> out = new ArrayList<>();
        for (JsonNode c : flatten(pre)) {
            String t = c.path("type").asText();
            switch (t) {
                case "Split" -> {
                    JsonNode pat = c.path("pattern");
                    String regex = pat.has("Regex") ? pat.path("Regex").asText()
                            : pat.has("String") ? java.util.regex.Pattern.quote(pat.path("String").asText()) : null;
                    if (regex == null) throw new LatheException(json, "Split pre-tokenizer without a pattern");
                    String behavior = c.path("behavior").asText("Isolated");
                    if (!"Isolated".equals(behavior) || c.path("invert").asBoolean(false)) {
                        throw new LatheException(json, "unsupported Split pre-tokenizer (behavior " + behavior
                                + ", invert " + c.path("invert").asBoolean(false) + "); only Isolated is supported");
                    }
                    out.add(regex);
                }
                case "Digits" -> out.add(c.path("individual_digits").asBoolean(false) ? "\\p{N}" : "\\p{N}+");
                case "ByteLevel" -> {
                    if (c.path("add_prefix_space").asBoolean(false)) {
                        throw new LatheException(json, "ByteLevel pre-tokenizer with add_prefix_space is not supported (llama.cpp ignores it)");
                    }
                    if (c.path("use_regex").asBoolean(true)) out.add(PreTokenizer.GPT2);
                }
                default -> throw new LatheException(json, "unsupported pre-tokenizer '" + t + "' in a byte-level tokenizer");
            }
        }
        if (out.isEmpty()) throw new LatheException(json, "byte-level tokenizer without a splitting regex");
        return out;
    }

    private static int tokenId(Path json, JsonNode cfg, String key, Map<String, Integer> ids, int def) {
        JsonNode v = cfg.path(key);
        String text = v.isTextual() ? v.asText() : v.isObject() && v.path("content").isTextual() ? v.path("content").asText() : null;
        if (text == null) return def;
        Integer id = ids.get(text);
        if (id == null) throw new LatheException(json, key + " '" + text + "' is not in the vocabulary");
        return id;
    }

    /** The TemplateProcessing post-processor, also inside a Sequence (Llama 3.1), or null. */
    private static JsonNode template(JsonNode pp) {
        if ("TemplateProcessing".equals(pp.path("type").asText())) return pp;
        for (JsonNode c : pp.path("processors")) if ("TemplateProcessing".equals(c.path("type").asText())) return c;
        return null;
    }

    private static boolean templateStartsWith(JsonNode pp, int bos, Map<String, Integer> ids) {
        JsonNode first = pp.path("single").path(0).path("SpecialToken");
        if (!first.isObject()) return false;
        Integer id = ids.get(first.path("id").asText());
        return id != null && id == bos;
    }

    // ------------------------------------------------------------------ writing

    static void write(Vocabulary v, Path folder) {
        Map<String, Integer> ids = new HashMap<>();
        for (int i = 0; i < v.size(); i++) {
            if (ids.put(v.tokens()[i], i) != null) {
                throw new LatheException(folder, "cannot write tokenizer.json: token '" + v.tokens()[i] + "' appears twice");
            }
        }
        ObjectNode root = F.objectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        for (int i = 0; i < v.size(); i++) {
            TokenType t = v.types()[i];
            if (!t.isSpecial()) continue;
            ObjectNode a = added.addObject();
            a.put("id", i);
            a.put("content", v.tokens()[i]);
            a.put("single_word", false);
            a.put("lstrip", false);
            a.put("rstrip", false);
            a.put("normalized", false);
            a.put("special", t != TokenType.USER_DEFINED);
        }
        if (v.isSpm()) {
            ObjectNode norm = root.putObject("normalizer");
            norm.put("type", "Sequence");
            ArrayNode ns = norm.putArray("normalizers");
            if (v.addSpacePrefix()) ns.addObject().put("type", "Prepend").put("prepend", META);
            ObjectNode rep = ns.addObject().put("type", "Replace");
            rep.putObject("pattern").put("String", " ");
            rep.put("content", META);
            root.putNull("pre_tokenizer");
        } else {
            root.putNull("normalizer");
            root.set("pre_tokenizer", byteLevelPreTokenizer(v, folder));
        }
        root.set("post_processor", postProcessor(v));
        ObjectNode dec = root.putObject("decoder");
        if (v.isSpm()) {
            dec.put("type", "Sequence");
            ArrayNode ds = dec.putArray("decoders");
            ObjectNode rep = ds.addObject().put("type", "Replace");
            rep.putObject("pattern").put("String", META);
            rep.put("content", " ");
            ds.addObject().put("type", "ByteFallback");
            ds.addObject().put("type", "Fuse");
            if (v.addSpacePrefix()) ds.addObject().put("type", "Strip").put("content", " ").put("start", 1).put("stop", 0);
        } else {
            dec.put("type", "ByteLevel").put("add_prefix_space", true).put("trim_offsets", true).put("use_regex", true);
        }
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        if (v.unkId() >= 0) model.put("unk_token", v.tokens()[v.unkId()]);
        else model.putNull("unk_token");
        model.putNull("continuing_subword_prefix");
        model.putNull("end_of_word_suffix");
        model.put("fuse_unk", v.isSpm());
        model.put("byte_fallback", v.isSpm());
        model.put("ignore_merges", v.ignoreMerges());
        ObjectNode vocab = model.putObject("vocab");
        for (int i = 0; i < v.size(); i++) vocab.put(v.tokens()[i], i);
        ArrayNode merges = model.putArray("merges");
        for (String m : v.isSpm() ? spmMerges(v, ids) : Arrays.asList(v.merges())) {
            int sp = m.indexOf(' ', 1);
            merges.addArray().add(m.substring(0, sp)).add(m.substring(sp + 1));
        }

        ObjectNode cfg = F.objectNode();
        cfg.put("add_bos_token", v.addBos());
        cfg.put("add_eos_token", v.addEos());
        putToken(cfg, "bos_token", v, v.bosId());
        putToken(cfg, "eos_token", v, v.eosId());
        putToken(cfg, "unk_token", v, v.unkId());
        putToken(cfg, "pad_token", v, v.padId());
        cfg.put("clean_up_tokenization_spaces", v.cleanSpaces());
        if (v.isSpm()) cfg.put("legacy", false);
        cfg.put("model_max_length", 1_000_000_000_000_000L);
        cfg.put("tokenizer_class", v.isSpm() ? "LlamaTokenizerFast" : "PreTrainedTokenizerFast");

        try {
            Files.createDirectories(folder);
        } catch (IOException e) {
            throw new LatheException(folder, "cannot create folder: " + e.getMessage(), e);
        }
        writeAtomically(folder.resolve("tokenizer.json"), root);
        writeAtomically(folder.resolve("tokenizer_config.json"), cfg);
    }

    private static void putToken(ObjectNode cfg, String key, Vocabulary v, int id) {
        if (id >= 0) cfg.put(key, v.tokens()[id]);
        else cfg.putNull(key);
    }

    private static JsonNode byteLevelPreTokenizer(Vocabulary v, Path folder) {
        ObjectNode byteLevel = F.objectNode().put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true);
        String[] regexes = v.pre() != null ? PreTokenizer.forName(v.pre()).regexes() : v.customRegexes();
        if (regexes.length == 1 && regexes[0].equals(PreTokenizer.GPT2)) return byteLevel.put("use_regex", true);
        ObjectNode seq = F.objectNode().put("type", "Sequence");
        ArrayNode list = seq.putArray("pretokenizers");
        for (String r : regexes) {
            String hf = r.equals(PreTokenizer.LLAMA3) ? PreTokenizer.LLAMA3_HF : r.equals(PreTokenizer.QWEN2) ? PreTokenizer.QWEN2_HF : r;
            ObjectNode split = list.addObject().put("type", "Split");
            split.putObject("pattern").put("Regex", hf);
            split.put("behavior", "Isolated").put("invert", false);
        }
        list.add(byteLevel.put("use_regex", false));
        return seq;
    }

    private static JsonNode postProcessor(Vocabulary v) {
        ObjectNode pp = F.objectNode().put("type", "TemplateProcessing");
        ArrayNode single = pp.putArray("single");
        ArrayNode pair = pp.putArray("pair");
        ObjectNode specials = F.objectNode();
        if (v.addBos()) {
            addSpecial(single, v, v.bosId(), specials);
            addSpecial(pair, v, v.bosId(), specials);
        }
        single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        if (v.addEos()) addSpecial(single, v, v.eosId(), specials);
        if (v.addEos()) addSpecial(pair, v, v.eosId(), specials);
        if (v.addBos()) addSpecial(pair, v, v.bosId(), specials);
        pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
        if (v.addEos()) addSpecial(pair, v, v.eosId(), specials);
        pp.set("special_tokens", specials);
        return pp;
    }

    private static void addSpecial(ArrayNode seq, Vocabulary v, int id, ObjectNode specials) {
        String t = v.tokens()[id];
        seq.addObject().putObject("SpecialToken").put("id", t).put("type_id", 0);
        ObjectNode s = specials.putObject(t);
        s.put("id", t);
        s.putArray("ids").add(id);
        s.putArray("tokens").add(t);
    }

    /**
     * Merges equivalent to SPM's scored bigram merging, as HF's SentencePiece converter makes them: for each
     * piece (best score first), every split into two vocabulary pieces, ordered by the ids of the halves.
     */
    static List<String> spmMerges(Vocabulary v, Map<String, Integer> ids) {
        Integer[] order = new Integer[v.size()];
        for (int i = 0; i < order.length; i++) order[i] = i;
        float[] sc = v.scores();
        Arrays.sort(order, (a, b) -> sc[a] != sc[b] ? (sc[b] > sc[a] ? 1 : -1) : Integer.compare(a, b));
        List<String> out = new ArrayList<>();
        List<int[]> local = new ArrayList<>();
        for (int id : order) {
            TokenType t = v.types()[id];
            if (t != TokenType.NORMAL && t != TokenType.UNDEFINED) continue;
            String piece = v.tokens()[id];
            local.clear();
            for (int k = piece.offsetByCodePoints(0, 1); k < piece.length(); k = piece.offsetByCodePoints(k, 1)) {
                Integer l = ids.get(piece.substring(0, k));
                Integer r = ids.get(piece.substring(k));
                if (l != null && r != null) local.add(new int[]{l, r, k});
            }
            local.sort((x, y) -> x[0] != y[0] ? Integer.compare(x[0], y[0]) : Integer.compare(x[1], y[1]));
            for (int[] s : local) out.add(piece.substring(0, s[2]) + " " + piece.substring(s[2]));
        }
        return out;
    }

    private static void writeAtomically(Path target, JsonNode node) {
        byte[] bytes;
        try {
            bytes = JSON.writer().with(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(node);
        } catch (IOException e) {
            throw new LatheException(target, "cannot encode JSON: " + e.getMessage(), e);
        }
        AtomicOutput.writeBytes(target, bytes);
    }
}
