package dev.lathe.tokenizer;

import dev.lathe.LatheException;
import dev.lathe.io.gguf.GgufFile;
import dev.lathe.io.gguf.GgufValue;
import dev.lathe.io.gguf.GgufValueType;
import dev.lathe.model.WeightSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/** Builds tokenizers from GGUF metadata or a Hugging Face tokenizer.json, and writes them back. */
public final class Tokenizers {
    public static final String KEY_MODEL = "tokenizer.ggml.model";
    public static final String KEY_PRE = "tokenizer.ggml.pre";
    public static final String KEY_TOKENS = "tokenizer.ggml.tokens";
    public static final String KEY_SCORES = "tokenizer.ggml.scores";
    public static final String KEY_TOKEN_TYPE = "tokenizer.ggml.token_type";
    public static final String KEY_MERGES = "tokenizer.ggml.merges";
    public static final String KEY_BOS = "tokenizer.ggml.bos_token_id";
    public static final String KEY_EOS = "tokenizer.ggml.eos_token_id";
    public static final String KEY_UNK = "tokenizer.ggml.unknown_token_id";
    public static final String KEY_PAD = "tokenizer.ggml.padding_token_id";
    public static final String KEY_EOT = "tokenizer.ggml.eot_token_id";
    public static final String KEY_ADD_BOS = "tokenizer.ggml.add_bos_token";
    public static final String KEY_ADD_EOS = "tokenizer.ggml.add_eos_token";
    public static final String KEY_ADD_SPACE_PREFIX = "tokenizer.ggml.add_space_prefix";

    /** Pre-tokenizers for which llama.cpp turns clean_up_tokenization_spaces off. */
    private static final Set<String> NO_CLEAN_SPACES = Set.of("deepseek-llm", "deepseek-coder", "deepseek-v3",
            "command-r", "qwen2", "deepseek-r1-qwen", "tekken", "smollm", "chameleon");
    /** Pre-tokenizers for which llama.cpp adds BOS and ignores merges of whole-token pre-tokens. */
    private static final Set<String> LLAMA3_LIKE = Set.of("llama3", "llama-v3", "llama-bpe", "falcon3", "tekken");

    private Tokenizers() {}

    /**
     * The tokenizer of a checkpoint: from its GGUF metadata, or from tokenizer.json in its Hugging Face
     * folder; empty when the source has none (e.g. a llama2.c checkpoint, an HF folder without tokenizer.json).
     * The vocabulary is padded with unused tokens up to the model's vocabulary size if it is shorter.
     */
    public static Optional<Tokenizer> load(WeightSource src) {
        Optional<Tokenizer> t = Optional.empty();
        if (src.gguf().isPresent()) {
            t = fromGguf(src.gguf().get());
        } else if (src.hfFolder().isPresent() && Files.isRegularFile(src.hfFolder().get().resolve("tokenizer.json"))) {
            t = Optional.of(fromHfFolder(src.hfFolder().get()));
        }
        if (t.isEmpty()) return t;
        int modelVocab = src.config().vocabSize();
        Tokenizer tok = t.get();
        if (tok.vocabSize() > modelVocab) {
            throw new LatheException(src.path(), "tokenizer has " + tok.vocabSize() + " tokens but the model only " + modelVocab);
        }
        return Optional.of(tok.vocabSize() < modelVocab ? create(pad(tok.vocabulary(), modelVocab), src.path()) : tok);
    }

    /** Pads with "[PAD{i}]" unused tokens, as convert_hf_to_gguf.py does. */
    static Vocabulary pad(Vocabulary v, int size) {
        int n = v.size();
        String[] tokens = java.util.Arrays.copyOf(v.tokens(), size);
        float[] scores = java.util.Arrays.copyOf(v.scores(), size);
        TokenType[] types = java.util.Arrays.copyOf(v.types(), size);
        for (int i = n; i < size; i++) {
            tokens[i] = "[PAD" + i + "]";
            types[i] = TokenType.UNUSED;
        }
        return new Vocabulary(v.model(), v.pre(), tokens, scores, types, v.merges(), v.bosId(), v.eosId(), v.unkId(),
                v.padId(), v.eotId(), v.addBos(), v.addEos(), v.addSpacePrefix(), v.ignoreMerges(), v.cleanSpaces(),
                v.customRegexes());
    }

    /** A tokenizer for a vocabulary (validated; errors name {@code source}, which may be null). */
    public static Tokenizer create(Vocabulary v, Path source) {
        v.validate(source);
        try {
            return v.isSpm() ? new SpmTokenizer(v) : new BpeTokenizer(v);
        } catch (LatheException e) {
            if (source == null || e.file() != null) throw e;
            throw new LatheException(source, e.getMessage(), e);
        }
    }

    public static Tokenizer create(Vocabulary v) {
        return create(v, null);
    }

    /** The tokenizer in GGUF metadata; empty when the file has no tokenizer.ggml.model or tokens. */
    public static Optional<Tokenizer> fromGguf(GgufFile f) {
        Path p = f.path();
        String model = f.getString(KEY_MODEL, null);
        if (model == null || "none".equals(model) || "no_vocab".equals(model) || f.get(KEY_TOKENS) == null) {
            return Optional.empty();
        }
        boolean spm = Vocabulary.SPM.equals(model);
        if (!spm && !Vocabulary.BPE.equals(model)) {
            throw new LatheException(p, "unknown tokenizer model '" + model + "' (supported: llama, gpt2)");
        }
        String[] tokens = f.getArray(KEY_TOKENS, String[].class).clone();
        int n = tokens.length;
        for (int i = 0; i < n; i++) if (tokens[i].isEmpty()) tokens[i] = "[EMPTY_" + i + "]";
        float[] scores = f.getArray(KEY_SCORES, float[].class);
        if (scores == null) scores = new float[n];
        else if (scores.length != n) throw new LatheException(p, KEY_SCORES + " has " + scores.length + " entries for " + n + " tokens");
        int[] tt = f.getArray(KEY_TOKEN_TYPE, int[].class);
        TokenType[] types = new TokenType[n];
        if (tt != null && tt.length != n) throw new LatheException(p, KEY_TOKEN_TYPE + " has " + tt.length + " entries for " + n + " tokens");
        for (int i = 0; i < n; i++) types[i] = tt == null ? TokenType.NORMAL : TokenType.byId(tt[i]);
        String pre = f.getString(KEY_PRE, null);
        String[] merges = new String[0];
        boolean addBos, addSpacePrefix, ignoreMerges = false, cleanSpaces;
        int bos, eos, unk;
        if (spm) {
            pre = pre == null ? "default" : pre;
            addBos = true;
            addSpacePrefix = true;
            cleanSpaces = false;
            bos = 1;
            eos = 2;
            unk = 0;
        } else {
            merges = f.getArray(KEY_MERGES, String[].class);
            if (merges == null) throw new LatheException(p, "BPE tokenizer without " + KEY_MERGES);
            if (pre == null || pre.isEmpty()) pre = "default";
            if (!PreTokenizer.isKnown(pre)) throw new LatheException(p, "unknown pre-tokenizer type '" + pre + "'");
            addBos = LLAMA3_LIKE.contains(pre);
            ignoreMerges = LLAMA3_LIKE.contains(pre);
            cleanSpaces = !NO_CLEAN_SPACES.contains(pre);
            addSpacePrefix = false;
            bos = -1; // llama.cpp defaults to 11 (a Falcon id); absent here means none
            eos = -1;
            unk = -1;
        }
        bos = specialId(f, KEY_BOS, bos, n);
        eos = specialId(f, KEY_EOS, eos, n);
        unk = specialId(f, KEY_UNK, unk, n);
        int pad = specialId(f, KEY_PAD, -1, n);
        int eot = specialId(f, KEY_EOT, -1, n);
        addBos = f.getBool(KEY_ADD_BOS, addBos);
        boolean addEos = f.getBool(KEY_ADD_EOS, false);
        addSpacePrefix = f.getBool(KEY_ADD_SPACE_PREFIX, addSpacePrefix);
        if (!spm) addSpacePrefix = false; // llama.cpp's BPE path never prefixes a space
        Vocabulary v = new Vocabulary(model, pre, tokens, scores, types, merges, bos, eos, unk, pad, eot,
                addBos, addEos, addSpacePrefix, ignoreMerges, cleanSpaces, null);
        return Optional.of(create(v, p));
    }

    private static int specialId(GgufFile f, String key, int def, int n) {
        long id = f.getLong(key, Long.MIN_VALUE);
        if (id == Long.MIN_VALUE) return def < n ? def : -1;
        if (id < 0 || id >= n) throw new LatheException(f.path(), key + " = " + id + " is outside the vocabulary (0.." + (n - 1) + ")");
        return (int) id;
    }

    /** The tokenizer in a GGUF file (opened and closed here); empty when it has none. */
    public static Optional<Tokenizer> fromGguf(Path gguf) {
        try (GgufFile f = GgufFile.open(gguf)) {
            return fromGguf(f);
        }
    }

    /** From a Hugging Face folder: tokenizer.json and, if present, tokenizer_config.json. */
    public static Tokenizer fromHfFolder(Path folder) {
        Path json = folder.resolve("tokenizer.json");
        if (!Files.isRegularFile(json)) throw new LatheException(folder, "no tokenizer.json in the folder");
        Path config = folder.resolve("tokenizer_config.json");
        return HfTokenizerJson.read(json, Files.isRegularFile(config) ? config : null);
    }

    /** From a tokenizer.json and an optional tokenizer_config.json (null: none). */
    public static Tokenizer fromTokenizerJson(Path tokenizerJson, Path tokenizerConfigOrNull) {
        return HfTokenizerJson.read(tokenizerJson, tokenizerConfigOrNull);
    }

    /**
     * Writes tokenizer.json and tokenizer_config.json into the folder (temp file + atomic rename each), in
     * the Llama 2 layout (BPE model with byte_fallback, Prepend/Replace normalizer) for SPM vocabularies and
     * the Llama 3 / Qwen2 layout (Split regex + ByteLevel) for byte-level BPE ones.
     */
    public static void writeHf(Tokenizer t, Path folder) {
        HfTokenizerJson.write(t.vocabulary(), folder);
    }

    /** The tokenizer.ggml.* metadata of a tokenizer, in llama.cpp's convert order. */
    public static Map<String, GgufValue> toGgufMetadata(Tokenizer t) {
        Vocabulary v = t.vocabulary();
        if (!v.isSpm() && v.pre() == null) {
            throw new LatheException("this BPE tokenizer's pre-tokenizer regex is not one llama.cpp knows ("
                    + String.join(" + ", v.customRegexes()) + "); it cannot be written as tokenizer.ggml.pre");
        }
        Map<String, GgufValue> m = new LinkedHashMap<>();
        m.put(KEY_MODEL, GgufValue.string(v.model()));
        m.put(KEY_PRE, GgufValue.string(v.pre()));
        m.put(KEY_TOKENS, GgufValue.array(GgufValueType.STRING, v.tokens().clone()));
        if (v.isSpm()) m.put(KEY_SCORES, GgufValue.array(GgufValueType.FLOAT32, v.scores().clone()));
        int[] types = new int[v.size()];
        for (int i = 0; i < types.length; i++) types[i] = v.types()[i].id;
        m.put(KEY_TOKEN_TYPE, GgufValue.array(GgufValueType.INT32, types));
        if (!v.isSpm()) m.put(KEY_MERGES, GgufValue.array(GgufValueType.STRING, v.merges().clone()));
        if (v.bosId() >= 0) m.put(KEY_BOS, GgufValue.u32(v.bosId()));
        if (v.eosId() >= 0) m.put(KEY_EOS, GgufValue.u32(v.eosId()));
        if (v.unkId() >= 0) m.put(KEY_UNK, GgufValue.u32(v.unkId()));
        if (v.padId() >= 0) m.put(KEY_PAD, GgufValue.u32(v.padId()));
        if (v.eotId() >= 0) m.put(KEY_EOT, GgufValue.u32(v.eotId()));
        m.put(KEY_ADD_BOS, GgufValue.bool(v.addBos()));
        m.put(KEY_ADD_EOS, GgufValue.bool(v.addEos()));
        if (v.isSpm()) m.put(KEY_ADD_SPACE_PREFIX, GgufValue.bool(v.addSpacePrefix()));
        return m;
    }

    /** llama.cpp's flags for a BPE pre-tokenizer name: {addBos, ignoreMerges, cleanSpaces}. */
    static boolean[] bpeFlags(String pre) {
        return new boolean[]{LLAMA3_LIKE.contains(pre), LLAMA3_LIKE.contains(pre), pre == null || !NO_CLEAN_SPACES.contains(pre)};
    }
}
