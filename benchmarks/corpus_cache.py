"""Token cache benchmark ("text" dataset, `cache: true`): memory, encoding speed, restart
time on a generated corpus larger than is comfortable in memory. Prints one JSON object.

    python benchmarks/corpus_cache.py                 # 2048 MB corpus
    python benchmarks/corpus_cache.py --quick         # 256 MB
    python benchmarks/corpus_cache.py --size-mb 512 --keep

The corpus is written to a new temporary directory under /tmp (deleted at the end unless
--keep): a block of about 4 MB of random words, drawn uniformly from a fixed vocabulary of
5,000 random lowercase words (2-10 letters), one line per about 60-100 characters, repeated
until the size is reached. The token cache goes to `<tmp>/cache`.

For each level (char, word), three phases, each in a fresh (spawned) process:
    encode        the first build: cache empty, both passes, ids.bin written
    cached_build  a second build: the cache is current (cache_hit must be true)
    train_start   session.run on the cached corpus (LSTM hidden 32, embedding 16,
                  sequential sampler batch 32 x 64 steps); should_stop stops it after
                  the first step (with max_steps 1 alone the run would score the whole
                  validation split at the epoch's end, minutes at this size)
Memory: after the imports (seqgen, torch, the plugins) and the Session, the process's
peak (VmHWM) is reset (/proc/self/clear_refs 5); baseline_mb = VmRSS then, peak_mb =
VmHWM after the work (train_start: at the first "step" event), above_baseline_mb the
difference. File-backed pages of the memory map that were touched count in RSS:
rss_anon_mb / rss_file_mb split the current RSS at the same moment.
Timings are wall clock; the corpus was just written, so it is read from the page cache.
MB here is 10**6 bytes. "others_cpu_share": the share of the machine's CPU time that
other processes used while a phase ran (Linux /proc/stat).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import string
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import seqgen  # noqa: E402
from common import busy_seconds, emit  # noqa: E402

MB = 10**6
VOCAB_WORDS = 5000
BLOCK_BYTES = 4 * 2**20
TARGETS = {"peak_above_baseline_mb_max": 300, "char_encode_mb_per_s_min": 100,
           "second_start_to_first_step_s_max": 2.0}


# -- the corpus ----------------------------------------------------------------------------
def make_block(seed: int = 0) -> bytes:
    rng = random.Random(seed)
    vocab: set[str] = set()
    while len(vocab) < VOCAB_WORDS:
        vocab.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10))))
    words = sorted(vocab)
    drawn = rng.choices(words, k=BLOCK_BYTES // 6)
    lines, line, length, target = [], [], 0, rng.randint(60, 100)
    total = 0
    for w in drawn:
        line.append(w)
        length += len(w) + 1
        if length >= target:
            text = " ".join(line)
            lines.append(text)
            total += len(text) + 1
            line, length, target = [], 0, rng.randint(60, 100)
            if total >= BLOCK_BYTES:
                break
    return ("\n".join(lines) + "\n").encode("ascii")


def write_corpus(path: Path, size: int) -> float:
    start = time.perf_counter()
    block = make_block()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            piece = block if left >= len(block) else block[:left]
            f.write(piece)
            left -= len(piece)
    return time.perf_counter() - start


# -- measuring, in the child ---------------------------------------------------------------
def _status() -> dict:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0]) * 1024 / MB
    return out


def _memory(baseline: float, st: dict) -> dict:
    return {"baseline_mb": round(baseline, 1), "peak_mb": round(st["VmHWM"], 1),
            "above_baseline_mb": round(st["VmHWM"] - baseline, 1),
            "rss_now_mb": round(st["VmRSS"], 1), "rss_anon_mb": round(st["RssAnon"], 1),
            "rss_file_mb": round(st["RssFile"], 1)}


def dataset_options(path: str, cache_dir: str, level: str) -> dict:
    return {"type": "text", "path": path, "cache": True, "cache_dir": cache_dir,
            "level": level}


def run_phase(phase: str, path: str, cache_dir: str, level: str) -> dict:
    """One phase, in a fresh process (see the module docstring)."""
    session = seqgen.Session(entry_points=False)
    options = dataset_options(path, cache_dir, level)
    Path("/proc/self/clear_refs").write_text("5")      # reset VmHWM to the current RSS
    baseline = _status()["VmRSS"]
    wall, mine, busy = time.perf_counter(), time.process_time(), busy_seconds()
    result: dict = {}

    if phase in ("encode", "cached_build"):
        start = time.perf_counter()
        ds = session.build("dataset", options)
        seconds = time.perf_counter() - start
        st = _status()
        info = ds.info
        result = {"seconds": round(seconds, 3), "cache_hit": info["cache_hit"],
                  **_memory(baseline, st),
                  "tokens": info["tokens"], "vocab_size": info["vocab_size"],
                  "dtype": info["dtype"], "characters": info["characters"]}
        if phase == "encode":
            size = os.path.getsize(path)
            ids_bin = Path(info["cache"]) / "ids.bin"
            result["mb_per_s"] = round(size / MB / seconds, 1)
            result["ids_bin_mb"] = round(ids_bin.stat().st_size / MB, 1)
        del ds
    else:
        with open(path, encoding="utf-8") as f:
            first_word = f.readline().split()[0]       # a prompt both vocabularies know
        spec = {"name": "corpus-cache-bench", "seed": 0, "dataset": options,
                "model": {"embedding": {"type": "learned", "size": 16},
                          "cell": {"type": "lstm", "hidden_size": 32}},
                "sampler": {"type": "sequential", "batch_size": 32, "num_steps": 64},
                "train": {"max_steps": 1, "epochs": 1},
                "generate": {"prompts": [first_word], "max_new_tokens": 4}}
        seen: dict = {}
        kinds: list[str] = []

        def on_event(event) -> None:
            kinds.append(event.kind)
            if event.kind == "step" and "first_step_s" not in seen:
                seen["first_step_s"] = time.perf_counter() - start
                seen["status"] = _status()

        start = time.perf_counter()
        run = session.run(spec, emit=on_event, save=False,
                          should_stop=lambda: "first_step_s" in seen)
        total = time.perf_counter() - start
        if "first_step_s" not in seen:
            raise RuntimeError(f"no step event; events: {kinds}")
        st_end = _status()
        result = {"first_step_s": round(seen["first_step_s"], 3),
                  "run_returned_s": round(total, 3),
                  **_memory(baseline, seen["status"]),
                  "peak_to_run_end_mb": round(st_end["VmHWM"], 1),
                  "above_baseline_to_run_end_mb": round(st_end["VmHWM"] - baseline, 1),
                  "events": sorted(set(kinds)),
                  "interrupted": getattr(run, "interrupted", None)}
    if busy is not None:
        others = busy_seconds() - busy - (time.process_time() - mine)
        result["others_cpu_share"] = round(
            max(0.0, others) / ((time.perf_counter() - wall) * os.cpu_count()), 3)
    result["torch_threads"] = torch.get_num_threads()
    return result


def in_fresh_process(*args) -> dict:
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        return pool.submit(run_phase, *args).result()


# -- the report ----------------------------------------------------------------------------
def level_report(path: str, cache_dir: str, level: str) -> dict:
    out = {}
    for phase in ("encode", "cached_build", "train_start"):
        print(f"[corpus_cache] {level} {phase} ...", file=sys.stderr, flush=True)
        out[phase] = in_fresh_process(phase, path, cache_dir, level)
    if out["encode"]["cache_hit"] is not False or out["cached_build"]["cache_hit"] is not True:
        out["error"] = "cache_hit not as expected (encode: false, cached_build: true)"
    return out


def checks(levels: dict) -> dict:
    limit = TARGETS["peak_above_baseline_mb_max"]
    out = {}
    for level, r in levels.items():
        out[level] = {
            "encode_peak_above_baseline_mb": r["encode"]["above_baseline_mb"],
            "encode_peak_under_300mb": r["encode"]["above_baseline_mb"] < limit,
            "train_start_peak_above_baseline_mb": r["train_start"]["above_baseline_mb"],
            "train_start_peak_under_300mb": r["train_start"]["above_baseline_mb"] < limit,
            "encode_mb_per_s": r["encode"]["mb_per_s"],
            "encode_at_least_100mb_per_s": r["encode"]["mb_per_s"]
            >= TARGETS["char_encode_mb_per_s_min"],
            "second_start_to_first_step_s": r["train_start"]["first_step_s"],
            "second_start_under_2s": r["train_start"]["first_step_s"]
            < TARGETS["second_start_to_first_step_s_max"],
            "cached_build_s": r["cached_build"]["seconds"],
        }
    out["char"]["all_met"] = all(v for k, v in out["char"].items()
                                 if k.endswith(("_300mb", "_per_s", "_2s")) and isinstance(v, bool))
    out["word"]["note"] = "word level: reported against the same thresholds, no target"
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=2048, help="corpus size (10**6 bytes)")
    parser.add_argument("--quick", action="store_true", help="256 MB corpus")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    size_mb = 256 if args.quick else args.size_mb
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="seqgen-corpus-cache-", dir="/tmp"))
    try:
        corpus = tmp / "corpus.txt"
        print(f"[corpus_cache] writing {size_mb} MB to {corpus}", file=sys.stderr, flush=True)
        gen_s = write_corpus(corpus, size_mb * MB)
        cache_dir = str(tmp / "cache")
        levels = {level: level_report(str(corpus), cache_dir, level)
                  for level in ("char", "word")}
        report = {
            "corpus": {"size_mb": size_mb, "bytes": corpus.stat().st_size,
                       "path": str(corpus), "kept": args.keep,
                       "generation_s": round(gen_s, 2), "vocab_words": VOCAB_WORDS,
                       "block_mb": round(BLOCK_BYTES / MB, 2)},
            "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
            "targets": TARGETS, "met": checks(levels), **levels,
        }
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    emit(report)


if __name__ == "__main__":
    main()
