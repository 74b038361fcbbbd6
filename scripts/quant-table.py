#!/usr/bin/env python3
"""The quantization proof table (issue 4): every method at every type on one model, against llama.cpp.

For each type (default Q8_0 Q6_K Q4_K_M Q4_0 Q3_K_M Q2_K; llama.cpp's default per-tensor mixes for both tools)
it makes: llama-quantize without and with an importance matrix (llama-imatrix on the same calibration text),
when LLAMA_CPP_BIN points at a llama.cpp build (built beside the project by hand; nothing here builds it),
and Lathe's rtn, imatrix, gptq, awq and awq+gptq. Each output is evaluated by `lathe eval --reference` on the
held-out text: perplexity, bits per byte, KLD mean and p99, top-1 agreement against the unquantized model.

A type auto@B (e.g. auto@5.27) is Lathe's measured mix at B bits per weight (`quantize --type auto --bpw B`:
every tensor measured alone in each candidate type on the calibration text, then the mix with the smallest
summed KL divergence within the budget); the measurements are kept in WORK/mix-sens.json and shared by all
methods and budgets. llama.cpp has no such type, so its rows are skipped there.

Calibration: a text file cut from ../shared/data/text/train/ (seeded slices of every file), the same for both
tools. Never the held-out folder.

    LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin python3 scripts/quant-table.py \
        --model models/lathe-ref/lathe-ref.gguf --work /tmp/qt --chunks 64

Rows are cached in WORK/rows.jsonl (a re-run skips what is done); the markdown table goes to stdout and
WORK/table.md.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LATHE = os.path.join(ROOT, "lathe")


def run(cmd, log):
    t0 = time.time()
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True)
        f.write(p.stdout + "\n")
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)} (see {log})")
    return p.stdout, time.time() - t0


def make_calib(train_dir, out, total_bytes, seed):
    files = []
    for d, _, names in os.walk(train_dir):
        files += [os.path.join(d, n) for n in names if n.endswith(".txt")]
    files.sort()
    rng = random.Random(seed)
    texts = [open(f, encoding="utf-8").read() for f in files]
    sizes = [len(t) for t in texts]
    whole = sum(sizes)
    parts = []
    per = 1024
    n = total_bytes // per
    for _ in range(n):
        k = rng.choices(range(len(texts)), weights=sizes)[0]
        t = texts[k]
        s = rng.randrange(0, max(1, len(t) - per))
        # start after and end at a space so no word is cut (some files hold a whole address on one line)
        a = t.find(" ", s)
        b = t.find(" ", a + 1 + per) if a >= 0 else -1
        if a < 0 or b < 0:
            continue
        parts.append(t[a + 1:b].strip() + "\n\n")
    with open(out, "w", encoding="utf-8") as f:
        f.write("".join(parts))
    return whole


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models/lathe-ref/lathe-ref.gguf"))
    ap.add_argument("--work", required=True)
    ap.add_argument("--types", default="Q8_0,Q6_K,Q4_K_M,Q4_0,Q3_K_M,Q2_K")
    ap.add_argument("--methods", default="llama-rtn,llama-imatrix,rtn,imatrix,gptq,awq,awq+gptq")
    ap.add_argument("--text", default=os.path.join(ROOT, "../shared/data/text/heldout/austen-persuasion.txt"))
    ap.add_argument("--train", default=os.path.join(ROOT, "../shared/data/text/train"))
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=-1, help="evaluate at most this many chunks")
    ap.add_argument("--calib-bytes", type=int, default=131072)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mix-seed", type=int, default=None, help="seed of the auto mix's measuring windows (default --seed)")
    ap.add_argument("--mix-chunks", type=int, default=8)
    a = ap.parse_args()

    os.makedirs(a.work, exist_ok=True)
    # a fixed copy of the jar, so editing the sources while the table runs changes nothing under it
    if "LATHE_JAR" not in os.environ:
        subprocess.run([LATHE, "--version"], check=True, stdout=subprocess.DEVNULL)
        jar = os.path.join(a.work, "lathe.jar")
        import shutil
        shutil.copyfile(os.path.join(ROOT, "target", "lathe.jar"), jar)
        os.environ["LATHE_JAR"] = jar
    log = os.path.join(a.work, "log.txt")
    llama = os.environ.get("LLAMA_CPP_BIN")
    calib = os.path.join(a.work, "calib.txt")
    if not os.path.exists(calib):
        make_calib(a.train, calib, a.calib_bytes, a.seed)
    rows_file = os.path.join(a.work, "rows.jsonl")
    done = {}
    if os.path.exists(rows_file):
        for line in open(rows_file):
            r = json.loads(line)
            done[(r["type"], r["method"])] = r

    imat = os.path.join(a.work, "llama-imatrix.dat")
    if llama and not os.path.exists(imat):
        run([os.path.join(llama, "llama-imatrix"), "-m", a.model, "-f", calib, "-c", str(a.ctx), "-t", str(a.threads),
             "-o", imat], log)

    def evaluate(path):
        cmd = [LATHE, "eval", path, "--reference", a.model, "--text", a.text, "--ctx", str(a.ctx),
               "-t", str(a.threads), "--json"]
        if a.chunks > 0:
            cmd += ["--chunks", str(a.chunks)]
        out, _ = run(cmd, log)
        return json.loads(out)

    def inspect(path):
        out, _ = run([LATHE, "inspect", path, "--json"], log)
        return json.loads(out)

    for typ in a.types.split(","):
        for method in a.methods.split(","):
            if (typ, method) in done:
                continue
            if method.startswith("llama-") and (not llama or typ.startswith("auto")):
                continue
            out = os.path.join(a.work, f"{method.replace('+', '_')}-{typ}.gguf")
            if method == "llama-rtn":
                _, secs = run([os.path.join(llama, "llama-quantize"), a.model, out, typ, str(a.threads)], log)
            elif method == "llama-imatrix":
                _, secs = run([os.path.join(llama, "llama-quantize"), "--imatrix", imat, a.model, out, typ, str(a.threads)], log)
            else:
                if typ.startswith("auto@"):
                    mix_seed = a.seed if a.mix_seed is None else a.mix_seed
                    cmd = [LATHE, "quantize", a.model, "--type", "auto", "--bpw", typ[5:], "--method", method, "-o", out,
                           "-t", str(a.threads), "--json", "--calib", calib, "--mix-chunks", str(a.mix_chunks),
                           "--mix-ctx", str(a.ctx), "--seed", str(mix_seed),
                           "--sensitivity", os.path.join(a.work, f"mix-sens-seed{mix_seed}.json")]
                    if method != "rtn":
                        cmd += ["--samples", str(a.samples), "--seq-len", str(a.ctx)]
                else:
                    cmd = [LATHE, "quantize", a.model, "--type", typ, "--method", method, "-o", out, "-t", str(a.threads), "--json"]
                    if method != "rtn":
                        cmd += ["--calib", calib, "--samples", str(a.samples), "--seq-len", str(a.ctx), "--seed", str(a.seed)]
                _, secs = run(cmd, log)
            info = inspect(out)
            ev = evaluate(out)
            row = {"type": typ, "method": method, "bytes": os.path.getsize(out), "bpw": info["bits_per_weight"],
                   "seconds": round(secs, 1), "ppl": ev["ppl"], "bpb": ev["bpb"], "kld_mean": ev["kld_mean"],
                   "kld_p99": ev["kld_p99"], "top1": ev["top1"], "ppl_reference": ev["ppl_reference"],
                   "scored_tokens": ev["scored_tokens"]}
            with open(rows_file, "a") as f:
                f.write(json.dumps(row) + "\n")
            done[(typ, method)] = row
            print(f"{typ:7} {method:14} bpw {row['bpw']:.3f} ppl {row['ppl']:.4f} kld {row['kld_mean']:.6f}", file=sys.stderr)

    lines = ["| type | method | size (bytes) | bpw | PPL | bits/byte | KLD mean | KLD p99 | top-1 | time (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ref = None
    for typ in a.types.split(","):
        for method in a.methods.split(","):
            r = done.get((typ, method))
            if not r:
                continue
            ref = r["ppl_reference"]
            lines.append(f"| {typ} | {method} | {r['bytes']:,} | {r['bpw']:.3f} | {r['ppl']:.4f} | {r['bpb']:.4f} | "
                         f"{r['kld_mean']:.6f} | {r['kld_p99']:.5f} | {r['top1']:.4f} | {r['seconds']} |")
    if ref:
        lines.append(f"\nUnquantized reference perplexity on the same chunks: {ref:.4f}.")
    table = "\n".join(lines)
    open(os.path.join(a.work, "table.md"), "w").write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
