"""Generation benchmark: seqgen's batched loop vs the textbook one. Prints one JSON object.

    python benchmarks/generate.py            # everything, as specified (1-2 min idle)
    python benchmarks/generate.py --quick    # (a)'s textbook side timed on 8 samples, x8
    python benchmarks/generate.py --threads 1

The allocator is warmed first so that the baselines' nn.LSTM runs in its fast regime
(warm_allocator says why); that is likely, not guaranteed: compare nn_lstm_t1_us (~300 us
fast, 700+ slow) when reading a run.

Model: a random-weight 2-layer LSTM (hidden 256, learned embedding 64, vocabulary 65)
built through seqgen (Session.build_model), eval mode. Every side draws from the full
distribution (seqgen's "random" strategy; torch.multinomial in the textbook loop), so
each does the same work per token. Greedy runs of both agree token for token (checked).

(a) 64 samples x 500 new characters after a 1-character prompt: seqgen (one batch of 64)
    vs the textbook approach in the same process and on the same weights: one sample at
    a time, a new input tensor every step, the model's nn.LSTM called with T=1 and
    autograd left on.
(b) one sample: the recurrent step per token, the cell's stepper (what generation runs)
    vs the model's nn.LSTM called with T=1 under no_grad, both carrying the state, and the
    largest difference between their outputs. Also the whole generation loop per token
    (embedding, head and sampling too), seqgen vs the textbook loop.
(c) seqgen tokens/s at batch sizes 1, 64 and 1024.
(d) where a batch-1 token's time goes: each piece timed alone (profile_batch1), and the
    whole loop with the fused LSTM's C++ loop (plugins/cells/lstm_generate.cpp, what
    batch-1 generation runs) and without it (the torch ops path).
"""
from __future__ import annotations

import argparse
import json
import time

from unittest import mock

import torch

import seqgen
from seqgen.generate import TextGenerator
from seqgen_plugins.cells import lstm_generate

VOCAB, EMBED, HIDDEN, LAYERS = 65, 64, 256, 2
SAMPLES, NEW = 64, 500
CHARS = "\n !$&',-.3:;?" + "".join(map(chr, range(65, 91))) + "".join(map(chr, range(97, 123)))


def build() -> TextGenerator:
    torch.manual_seed(0)
    session = seqgen.Session(entry_points=False)
    spec = session.resolve({
        "dataset": {"type": "synthetic"},
        "model": {"embedding": {"type": "learned", "size": EMBED},
                  "cell": {"type": "lstm", "hidden_size": HIDDEN, "num_layers": LAYERS}}})
    vocab = seqgen.Vocab.from_text(CHARS)          # Tiny Shakespeare's 65 characters
    return TextGenerator(session.build_model(spec, VOCAB), vocab)


def best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def textbook(gen: TextGenerator, prompt: list[int], new: int, seed: int,
             sample: bool = True) -> list[int]:
    """One sample, the way tutorials write it: the model's own modules, a fresh tensor each
    step, nn.LSTM with T=1, autograd on unless the caller turned it off."""
    embed, lstm, head = gen.model.embedding, gen.model.cell.rnn, gen.model.head
    generator = torch.Generator().manual_seed(seed)
    out, state = lstm(embed(torch.tensor(prompt)).unsqueeze(1))       # [T, 1, H]
    logits = head(out[-1, 0])                                          # [V]
    chars = []
    for _ in range(new):
        if sample:
            idx = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))
        else:
            idx = int(logits.argmax())
        chars.append(idx)
        out, state = lstm(embed(torch.tensor([[idx]])), state)         # [1, 1, H]
        logits = head(out[0, 0])
    return chars


def check_same_numbers(gen: TextGenerator, random: seqgen.Strategy) -> None:
    """Both sides compute the same model: greedy continuations agree token for token."""
    greedy = seqgen.Session(entry_points=False).strategy("greedy")
    ours = gen.generate(["a"], greedy, max_new_tokens=50)[0].text
    with torch.no_grad():
        theirs = gen.vocab.decode(textbook(gen, gen.vocab.encode("a").tolist(), 50, 0, False))
    assert ours == theirs, (ours, theirs)


def batched_vs_textbook(gen, random, quick: bool) -> dict:
    seqgen_s = best_of(lambda: gen.generate(["a"], random, NEW, SAMPLES, seed=0))
    timed = 8 if quick else SAMPLES
    prompt = gen.vocab.encode("a").tolist()
    start = time.perf_counter()
    for i in range(timed):
        textbook(gen, prompt, NEW, seed=i)
    textbook_s = (time.perf_counter() - start) * SAMPLES / timed
    return {"samples": SAMPLES, "new_chars": NEW, "seqgen_s": round(seqgen_s, 3),
            "textbook_s": round(textbook_s, 2), "textbook_samples_timed": timed,
            "speedup": round(textbook_s / seqgen_s, 1), "target": 60}


def warm_allocator() -> None:
    """Try to put nn.LSTM in its fast regime, so the baseline is the strongest one.

    Each nn.LSTM call allocates temporary buffers of a few MB. glibc serves those by mmap
    (fresh pages, page faults on every call: 700-1500 us per call here) until the process
    frees a block at least that large, which raises its mmap threshold; from then on they
    come from the heap (~300 us). Which regime a process is in depends on its history, so
    free a 16 MB block first. Usually enough; one run in four here still saw a slow
    textbook loop while the bare nn.LSTM timing stayed fast.
    """
    block = torch.empty(4_000_000)       # 16 MB of float32
    del block


def alternate(fns: dict, rounds: int = 5) -> dict:
    """Best time of each function over `rounds`, run in turn so drift hits all alike."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def per_token(gen, random) -> dict:
    """(b): the recurrent step per token, seqgen's stepper vs nn.LSTM called with T=1, both
    carrying the state over STEPS steps; and the whole generation loop per token."""
    cell, lstm, steps = gen.model.cell, gen.model.cell.rnn, 2000
    x = torch.randn(1, EMBED)
    start = cell.initial_state(1)

    def stepper_loop():
        with torch.inference_mode():
            step = cell.stepper(start)
            for _ in range(steps):
                step(x)

    def module_loop():
        state = start
        for _ in range(steps):
            _, state = lstm(x[None], state)                                # [1, 1, E]

    def module_no_grad():
        with torch.no_grad():
            module_loop()

    prompt = gen.vocab.encode("a").tolist()

    def textbook_no_grad():
        with torch.no_grad():
            textbook(gen, prompt, NEW, 0)

    cells = alternate({"stepper": stepper_loop, "module": module_no_grad,
                       "module_autograd": module_loop})
    loops = alternate({"seqgen": lambda: gen.generate(["a"], random, NEW, 1, seed=0),
                       "textbook": textbook_no_grad}, rounds=7)
    us = {name: round(s / steps * 1e6, 1) for name, s in cells.items()}
    loop_us = {name: round(s / NEW * 1e6, 1) for name, s in loops.items()}
    with torch.inference_mode():
        kind = type(cell.stepper(start)).__name__
    return {"stepper_us": us["stepper"], "stepper": kind,
            "nn_lstm_t1_us": us["module"], "nn_lstm_t1_autograd_us": us["module_autograd"],
            "speedup": round(us["module"] / us["stepper"], 2), "target": 4,
            "max_abs_diff_vs_nn_lstm": stepper_difference(cell, lstm),
            "whole_token": {"seqgen_us": loop_us["seqgen"],
                            "textbook_no_grad_us": loop_us["textbook"],
                            "speedup": round(loop_us["textbook"] / loop_us["seqgen"], 2),
                            "target": 4}}


def stepper_difference(cell, lstm, steps: int = 200) -> float:
    """Largest |seqgen stepper - nn.LSTM| over `steps` carried steps of random inputs."""
    torch.manual_seed(1)
    x = torch.randn(steps, 1, EMBED)
    with torch.inference_mode():
        want, _ = lstm(x)                                                  # [T, 1, H]
        step = cell.stepper(cell.initial_state(1))
        got = torch.stack([step(x_t) for x_t in x])
    return float((got - want).abs().max())


def profile_batch1(gen, random) -> dict:
    """Where a batch-1 token's time goes (us per token, best of 5 loops of NEW tokens).
    The whole loop (C++ loop on and off); then the torch path's pieces, each alone, and
    the recurrent step followed by one more small op: at batch 1
    the step streams ~3.4 MB of weights through a 2 MB L2, which evicts torch's code, so
    every op after it runs cold (its cost in the loop is that penalty, not its own)."""
    with torch.inference_mode():
        logits, state = gen._prime([gen.vocab.encode("a")])                 # [1, V]
        tokens = gen.model.stepper(state)
        cell = gen.model.cell.stepper(state)
        ids, x = torch.tensor([3]), torch.randn(1, EMBED)
        h = torch.randn(1, HIDDEN)
        generator = torch.Generator().manual_seed(0)
        token = torch.tensor([3])
        def torch_path():
            with mock.patch.object(lstm_generate, "kernel", lambda: None):
                gen.generate(["a"], random, NEW, 1, seed=0)
        pieces = {
            "whole_loop": lambda: gen.generate(["a"], random, NEW, 1, seed=0),
            "whole_loop, torch path (C++ loop off)": torch_path,
            "token_step (embedding, cell, head)": lambda: [tokens(ids) for _ in range(NEW)],
            "cell_step alone": lambda: [cell.step_view(x) for _ in range(NEW)],
            "cell_step + one small op (h + 1)": lambda: [(cell.step_view(x), h.add(1))
                                                        for _ in range(NEW)],
            "head alone": lambda: [tokens.head(h) for _ in range(NEW)],
            "sampling alone (random)": lambda: [random.choose(logits, generator)
                                                for _ in range(NEW)],
            "log-probability alone (per step)": lambda: [
                torch.log_softmax(logits, -1).gather(1, token[:, None]) for _ in range(NEW)],
        }
        best = alternate(pieces)
    return {name: round(s / NEW * 1e6, 1) for name, s in best.items()}


def throughput(gen, random) -> dict:
    out = {}
    for batch, new in ((1, NEW), (64, NEW), (1024, 200)):
        seconds = best_of(lambda: gen.generate(["a"], random, new, batch, seed=0), 2)
        out[str(batch)] = {"new_tokens": new, "tokens_per_s": round(batch * new / seconds)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="time the textbook side of (a) on 8 samples and scale to 64")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warm_allocator()
    gen = build()
    random = seqgen.Session(entry_points=False).strategy("random")
    check_same_numbers(gen, random)
    print(json.dumps({
        "model": {"cell": "lstm", "layers": LAYERS, "hidden": HIDDEN, "embedding": EMBED,
                  "vocab": VOCAB, "parameters": gen.model.num_parameters()},
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "batched_64x500_vs_textbook": batched_vs_textbook(gen, random, args.quick),
        "single_sample_per_token": per_token(gen, random),
        "tokens_per_second": throughput(gen, random),
        "batch1_profile_us_per_token": profile_batch1(gen, random),
    }, indent=2))


if __name__ == "__main__":
    main()
