package dev.lathe.tokenizer;

import dev.lathe.LatheException;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Regex pre-tokenization of byte-level BPE vocabularies, as llama.cpp's {@code unicode_regex_split}: the
 * regexes are applied one after the other, each inside the pieces the previous one produced; both the
 * matches and the text between matches become pieces ("isolated" splitting). {@code \s} is Unicode
 * White_Space (llama.cpp's whitespace table), {@code \p{L}}/{@code \p{N}} the Unicode letter/number categories.
 */
public final class PreTokenizer {
    /** GPT-2: {@code 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+}. */
    public static final String GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    /** Llama 3 (tokenizer.json writes the contractions as {@code (?i:'s|'t|...)}; this is llama.cpp's form). */
    public static final String LLAMA3 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** Qwen2: as Llama 3 but single digits. */
    public static final String QWEN2 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** The tokenizer.json spellings of the Llama 3 and Qwen2 regexes. */
    public static final String LLAMA3_HF = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    public static final String QWEN2_HF = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** SmolLM / StarCoder: digits one by one, then GPT-2. */
    public static final String DIGIT = "\\p{N}";
    /** llama.cpp's "default" BPE pre-tokenizer (4 regexes). */
    private static final String[] DEFAULT = {
            "[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"};

    /** Pre-tokenizer name -> its regexes; these names are what llama.cpp accepts in tokenizer.ggml.pre. */
    private static final Map<String, String[]> BY_NAME = Map.ofEntries(
            Map.entry("default", DEFAULT),
            Map.entry("gpt-2", new String[]{GPT2}), Map.entry("gpt2", new String[]{GPT2}),
            Map.entry("phi-2", new String[]{GPT2}), Map.entry("roberta-bpe", new String[]{GPT2}),
            Map.entry("mpt", new String[]{GPT2}), Map.entry("olmo", new String[]{GPT2}), Map.entry("jais", new String[]{GPT2}),
            Map.entry("llama3", new String[]{LLAMA3}), Map.entry("llama-v3", new String[]{LLAMA3}),
            Map.entry("llama-bpe", new String[]{LLAMA3}), Map.entry("falcon3", new String[]{LLAMA3}),
            Map.entry("smaug-bpe", new String[]{LLAMA3}), Map.entry("dbrx", new String[]{LLAMA3}),
            Map.entry("qwen2", new String[]{QWEN2}), Map.entry("deepseek-r1-qwen", new String[]{QWEN2}),
            Map.entry("stablelm2", new String[]{QWEN2}), Map.entry("megrez", new String[]{QWEN2}),
            Map.entry("smollm", new String[]{DIGIT, GPT2}), Map.entry("starcoder", new String[]{DIGIT, GPT2}),
            Map.entry("refact", new String[]{DIGIT, GPT2}), Map.entry("command-r", new String[]{DIGIT, GPT2}),
            Map.entry("codeshell", new String[]{DIGIT, GPT2}), Map.entry("exaone", new String[]{DIGIT, GPT2}),
            Map.entry("minerva-7b", new String[]{DIGIT, GPT2}));

    private final String[] regexes;
    private final Pattern[] patterns;

    private PreTokenizer(String[] regexes, Pattern[] patterns) {
        this.regexes = regexes;
        this.patterns = patterns;
    }

    /** True when llama.cpp knows this pre-tokenizer name. */
    public static boolean isKnown(String name) {
        return BY_NAME.containsKey(name);
    }

    /** The pre-tokenizer for a tokenizer.ggml.pre name; LatheException for an unknown one. */
    public static PreTokenizer forName(String name) {
        String[] r = BY_NAME.get(name);
        if (r == null) throw new LatheException("unknown pre-tokenizer type '" + name + "' (known: " + new java.util.TreeSet<>(BY_NAME.keySet()) + ")");
        return of(r);
    }

    /** A pre-tokenizer from Java regexes (compiled with Unicode character classes). */
    public static PreTokenizer of(String... regexes) {
        Pattern[] p = new Pattern[regexes.length];
        for (int i = 0; i < regexes.length; i++) {
            try {
                p[i] = Pattern.compile(regexes[i], Pattern.UNICODE_CHARACTER_CLASS);
            } catch (PatternSyntaxException e) {
                throw new LatheException("bad pre-tokenizer regex '" + regexes[i] + "': " + e.getDescription());
            }
        }
        return new PreTokenizer(regexes.clone(), p);
    }

    /**
     * llama.cpp's pre-tokenizer name for a list of regexes (tokenizer.json spellings of the Llama 3 and Qwen2
     * regexes accepted), or null if llama.cpp has none for it.
     */
    public static String nameFor(java.util.List<String> regexes) {
        String[] r = regexes.stream().map(x -> x.equals(LLAMA3_HF) ? LLAMA3 : x.equals(QWEN2_HF) ? QWEN2 : x).toArray(String[]::new);
        for (String name : new String[]{"default", "gpt-2", "llama-bpe", "qwen2", "smollm"}) {
            if (java.util.Arrays.equals(BY_NAME.get(name), r)) return name;
        }
        return null;
    }

    public String[] regexes() {
        return regexes.clone();
    }

    /** The pieces of the text (their concatenation is the text). */
    public List<String> split(String text) {
        List<int[]> spans = new ArrayList<>();
        spans.add(new int[]{0, text.length()});
        for (Pattern p : patterns) {
            List<int[]> next = new ArrayList<>(spans.size() * 2);
            Matcher m = p.matcher(text);
            for (int[] s : spans) {
                m.region(s[0], s[1]);
                int pos = s[0];
                while (m.find()) {
                    if (m.end() == m.start()) continue; // empty matches add nothing
                    if (m.start() > pos) next.add(new int[]{pos, m.start()});
                    next.add(new int[]{m.start(), m.end()});
                    pos = m.end();
                }
                if (pos < s[1]) next.add(new int[]{pos, s[1]});
            }
            spans = next;
        }
        List<String> out = new ArrayList<>(spans.size());
        for (int[] s : spans) out.add(text.substring(s[0], s[1]));
        return out;
    }
}
