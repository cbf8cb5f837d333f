"""Generation benchmark: seqgen's batched loop vs the textbook one. Prints one JSON object.

    python benchmarks/generate.py            # everything, as specified (1-2 min idle)
    python benchmarks/generate.py --quick    # (a)'s textbook side timed on 8 samples, x8
    python benchmarks/generate.py --threads 1

Model: a random-weight 2-layer LSTM (hidden 256, learned embedding 64, vocabulary 65)
built through seqgen (Session.build_model), eval mode. Every side draws from the full
distribution (seqgen's "random" strategy; torch.multinomial in the textbook loop), so
each does the same work per token. Greedy runs of both agree token for token (checked).

(a) 64 samples x 500 new characters after a 1-character prompt: seqgen (one batch of 64)
    vs the textbook approach in the same process and on the same weights: one sample at
    a time, a new input tensor every step, the model's nn.LSTM called with T=1 and
    autograd left on.
(b) one sample: time per new token, seqgen vs the same loop with nn.LSTM T=1 under
    no_grad (the fair baseline); also the recurrent cell step alone, both ways.
(c) seqgen tokens/s at batch sizes 1, 64 and 1024.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import seqgen
from seqgen.generate import TextGenerator

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
            "speedup": round(textbook_s / seqgen_s, 1), "target": 30}


def per_token(gen, random) -> dict:
    seqgen_s = best_of(lambda: gen.generate(["a"], random, NEW, 1, seed=0)) / NEW
    prompt = gen.vocab.encode("a").tolist()
    with torch.no_grad():
        baseline_s = best_of(lambda: textbook(gen, prompt, NEW, 0)) / NEW
    autograd_s = best_of(lambda: textbook(gen, prompt, NEW, 0), 1) / NEW
    cell, lstm = gen.model.cell, gen.model.cell.rnn
    x = torch.randn(1, 1, EMBED)
    state = cell.initial_state(1)
    steps = 2000
    with torch.inference_mode():
        cell_s = best_of(lambda: [cell(x, state) for _ in range(steps)]) / steps
    with torch.no_grad():
        lstm_s = best_of(lambda: [lstm(x, state) for _ in range(steps)]) / steps
    return {"seqgen_us": round(seqgen_s * 1e6, 1),
            "nn_lstm_t1_no_grad_us": round(baseline_s * 1e6, 1),
            "nn_lstm_t1_autograd_us": round(autograd_s * 1e6, 1),
            "speedup": round(baseline_s / seqgen_s, 2), "target": 4,
            "cell_step_us": round(cell_s * 1e6, 1), "nn_lstm_step_us": round(lstm_s * 1e6, 1),
            "cell_speedup": round(lstm_s / cell_s, 2)}


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
    }, indent=2))


if __name__ == "__main__":
    main()
