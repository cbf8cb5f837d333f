"""Batch-1 generation through the fused LSTM's C++ loop (plugins/cells/lstm_generate.py):
nn.LSTM's numbers, seqgen's choice rules, the same generated text as the torch path, and
when it applies."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import seqgen
from seqgen.generate import TextGenerator
from seqgen_plugins.cells import lstm_generate
from seqgen_plugins.cells.fused import FusedLSTM
from seqgen_plugins.cells.lstm_generate import TokenLoop
from seqgen_plugins.cells.lstm_stepper import LSTMStepper
from seqgen_plugins.processors import Temperature
from seqgen_plugins.strategies.sampling import Chain

needs_kernel = pytest.mark.skipif(lstm_generate.kernel() is None,
                                  reason="the LSTM generation kernel cannot be built here")
V, I = 9, 5                                              # vocabulary, embedding width


def parts(layers=2, bias=True, head_bias=True, hidden=8):
    """(cell, embedding table [V, I], head) with seeded random weights."""
    torch.manual_seed(0)
    cell = FusedLSTM(I, hidden_size=hidden, num_layers=layers, bias=bias).eval()
    return cell, torch.randn(V, I), nn.Linear(hidden, V, bias=head_bias)


def start(cell, table, head):
    """A random state, its stepper and loop, and the logits to choose the first token
    from (of a random input row), as in generation after a prompt."""
    h = torch.randn(cell.num_layers, 1, cell.hidden_size)
    state = (h, torch.randn_like(h))
    stepper = LSTMStepper(cell, state, 1)
    loop = stepper.token_loop(table, head.weight.detach(),
                              None if head.bias is None else head.bias.detach())
    return state, stepper, loop, torch.randn(V)


def reference(cell, table, head, state, tokens):
    """nn.LSTM on the tokens' embeddings from `state`: logits after each [T, V], state."""
    out, final = cell.rnn(table[tokens][:, None], state)                 # [T, 1, H]
    return head(out[:, 0]), final


@needs_kernel
@pytest.mark.parametrize("layers,bias,head_bias", [(1, True, True), (2, True, False),
                                                   (3, False, True)])
def test_greedy_chunks_give_nn_lstm_logits_and_state(layers, bias, head_bias):
    cell, table, head = parts(layers, bias, head_bias)
    with torch.inference_mode():
        state, stepper, loop, logits = start(cell, table, head)
        first = logits.clone()
        tokens, chosen_from = loop.run(logits, 12, 0.0, None, None, step_last=True)
        want, (want_h, want_c) = reference(cell, table, head, state, tokens)
        got_h, got_c = stepper.state
    assert tokens.shape == (12,) and chosen_from.shape == (12, V)
    assert torch.equal(chosen_from[0], first)
    torch.testing.assert_close(chosen_from[1:], want[:-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, want[-1], atol=1e-5, rtol=0)  # the next logits
    assert torch.equal(tokens, chosen_from.argmax(-1))
    torch.testing.assert_close(got_h, want_h, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_c, want_c, atol=1e-5, rtol=0)


def inverse_cdf(logits: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """seqgen's draw, row by row: the first token whose cdf exceeds u * total."""
    cdf = torch.softmax(logits / temperature, -1).cumsum(-1)              # [T, V]
    return torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0]


@needs_kernel
@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_draws_take_the_inverse_cdf_of_each_uniform(temperature):
    cell, table, head = parts()
    u = torch.rand(400, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        state, _, loop, logits = start(cell, table, head)
        tokens, chosen_from = loop.run(logits, 400, temperature, u, None, step_last=False)
        want, _ = reference(cell, table, head, state, tokens)
    assert torch.equal(tokens, inverse_cdf(chosen_from, u, temperature))
    assert len(set(tokens.tolist())) > 3                     # draws, not one repeated token
    torch.testing.assert_close(chosen_from[1:], want[:-1], atol=1e-5, rtol=0)


@needs_kernel
def test_a_draw_never_lands_past_the_last_token_with_probability():
    """u near 1 with the tail's probability 0 (logit -inf) picks the last possible token."""
    cell, table, head = parts()
    with torch.no_grad():
        head.bias[-3:] = -float("inf")
    with torch.inference_mode():
        _, _, loop, logits = start(cell, table, head)
        logits[-3:] = -float("inf")
        tokens, _ = loop.run(logits, 20, 1.0, torch.full((20,), 0.99999994), None, False)
    assert int(tokens.max()) < V - 3


@needs_kernel
def test_stops_after_eos_and_without_step_last_leaves_the_state():
    cell, table, head = parts()
    with torch.inference_mode():
        torch.manual_seed(7)
        _, _, loop, logits = start(cell, table, head)
        tokens, _ = loop.run(logits, 10, 0.0, None, None, True)
        eos = int(tokens[4])
        first = tokens.tolist().index(eos)
        torch.manual_seed(7)                                 # the same start again
        _, stepper, loop, logits = start(cell, table, head)
        ended, _ = loop.run(logits, 10, 0.0, None, eos, True)
        assert ended.tolist() == tokens[:first + 1].tolist()
        before = [s.clone() for s in stepper.state]
        last = logits.clone()
        loop.run(logits, 1, 0.0, None, None, step_last=False)
        assert all(torch.equal(a, b) for a, b in zip(before, stepper.state))
        assert torch.equal(last, logits)                     # no step: logits untouched


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
def test_zigzag_order_and_thread_count_do_not_change_the_numbers(threads):
    """Odd steps walk the weights backwards and large layers split over threads: every
    row's sum is the same, so tokens, logits and state are identical bit for bit.
    H=160 is large enough for a split into two blocks of rows."""
    cell, table, head = parts(layers=2, hidden=160)
    u = torch.rand(9, generator=torch.Generator().manual_seed(2))
    results = []
    previous = torch.get_num_threads()
    try:
        for parity, n in ((0, 1), (1, threads)):
            torch.set_num_threads(n)
            torch.manual_seed(5)
            with torch.inference_mode():
                _, stepper, loop, logits = start(cell, table, head)
                loop.parity = parity
                tokens, chosen_from = loop.run(logits, 9, 1.0, u, None, True)
                results.append((tokens, chosen_from, logits, *stepper.state))
    finally:
        torch.set_num_threads(previous)
    assert all(torch.equal(a, b) for a, b in zip(*results))


# -- through generation -------------------------------------------------------------------

CHARS = "abcdefgh .\n"


def generator(layers=2, specials=("<eos>",), dtype=torch.float32, cell="lstm"):
    torch.manual_seed(0)
    session = seqgen.Session(entry_points=False)
    vocab = seqgen.Vocab.from_text(CHARS, specials=specials)
    spec = session.resolve({"dataset": {"type": "synthetic"},
                            "model": {"embedding": {"type": "learned", "size": 16},
                                      "cell": {"type": cell, "hidden_size": 12,
                                               "num_layers": layers}}})
    model = session.build_model(spec, len(vocab)).to(dtype)
    if vocab.eos_id is not None:
        with torch.no_grad():          # <eos> ends some rows of 200 tokens, not most
            model.head.bias[vocab.eos_id] -= 2.5
    return TextGenerator(model, vocab), session


def run_both(gen, monkeypatch, *calls):
    """Each call's result with the C++ loop, then without it, and how often it ran."""
    runs = []
    real_run = TokenLoop.run

    def counted(self, *args):
        runs.append(1)
        return real_run(self, *args)
    monkeypatch.setattr(TokenLoop, "run", counted)
    native = [call() for call in calls]
    used = len(runs)
    monkeypatch.setattr(lstm_generate, "kernel", lambda: None)
    return native, [call() for call in calls], used


def same_samples(native, torch_path):
    for a, b in zip(native, torch_path, strict=True):
        assert (a.text, len(a.logprobs)) == (b.text, len(b.logprobs))
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
        assert a.score == pytest.approx(b.score, abs=1e-4)


@needs_kernel
@pytest.mark.parametrize("strategy", ["greedy", "random", {"type": "temperature",
                                                           "temperature": 0.7}])
@pytest.mark.parametrize("new", [0, 1, 8, 9, 60])
@pytest.mark.parametrize("prompt", ["ab", ""])
def test_generate_gives_the_torch_paths_text_ids_and_logprobs(strategy, new, prompt,
                                                              monkeypatch):
    gen, session = generator()
    chosen = session.strategy(strategy)

    def call():
        ids = []
        return gen.generate([prompt], chosen, new, 1, seed=3, token_ids=ids), ids
    [(native, native_ids)], [(torch_path, torch_ids)], used = run_both(gen, monkeypatch, call)
    assert used >= (new > 0)                            # the loop ran (chunks of 8, 16, ...)
    assert native_ids == torch_ids
    same_samples(native, torch_path)


@needs_kernel
def test_eos_and_stop_strings_end_a_row_as_on_the_torch_path(monkeypatch):
    gen, session = generator()
    chosen = session.strategy("random")
    ended = [gen.generate(["a"], chosen, 200, 1, seed=s)[0] for s in range(6)]
    assert any(len(s.logprobs) < 200 for s in ended)     # <eos> ends some rows early
    calls = [lambda s=s: gen.generate(["a"], chosen, 200, 1, seed=s, stop=[" c", "h."])[0]
             for s in range(6)]
    native, torch_path, used = run_both(gen, monkeypatch, *calls)
    assert used >= 6
    same_samples(native, torch_path)
    assert any(len(cut.text) < len(whole.text) for cut, whole in zip(native, ended))


@needs_kernel
def test_a_stream_joins_to_the_torch_paths_text(monkeypatch):
    gen, session = generator(specials=())
    chosen = session.strategy("random")
    native, torch_path, used = run_both(
        gen, monkeypatch, lambda: list(gen.stream("ab", chosen, 100, seed=4)),
        lambda: gen.generate(["ab"], chosen, 100, 1, seed=4)[0].text)
    assert used >= 1
    assert len(native[0]) > 1                           # pieces as chunks finish
    assert "".join(native[0]) == native[1] == torch_path[1] == "".join(torch_path[0])


def test_plain_choices_of_the_built_in_strategies():
    session = seqgen.Session(entry_points=False)

    def plain(options):
        return session.strategy(options).plain_choice
    assert plain("greedy") == seqgen.PlainChoice(0.0)
    assert plain("random") == seqgen.PlainChoice(1.0)
    assert plain({"type": "temperature", "temperature": 0.7}) == seqgen.PlainChoice(0.7)
    assert plain({"type": "temperature", "temperature": 0}) == seqgen.PlainChoice(0.0)
    assert plain({"type": "top-k", "k": 1}) == seqgen.PlainChoice(0.0)
    for other in ({"type": "top-k", "k": 5}, {"type": "top-p", "p": 0.9},
                  {"type": "greedy", "repetition_penalty": 1.3}, {"type": "beam"}):
        assert plain(other) is None, other

    assert Chain([Temperature(-1.0)]).plain_choice is None   # Python only: the schema
    with pytest.raises(ValueError, match="finite and >= 0"):  # refuses it
        seqgen.PlainChoice(float("nan"))

    class Own(Chain):
        def choose(self, logits, generator=None, history=None):
            return logits.argmin(-1)
    assert Own().plain_choice is None                   # its own choose: always called


@needs_kernel
@pytest.mark.parametrize("case", ["batch 2", "float64", "gru", "no kernel", "top-k"])
def test_other_cases_take_the_torch_path(case, monkeypatch):
    gen, session = generator(specials=(), cell="gru" if case == "gru" else "lstm",
                             dtype=torch.float64 if case == "float64" else torch.float32)
    chosen = session.strategy({"type": "top-k", "k": 3} if case == "top-k" else "random")
    if case == "no kernel":
        monkeypatch.setattr(lstm_generate, "kernel", lambda: None)
    runs = []
    real_run = TokenLoop.run
    monkeypatch.setattr(TokenLoop, "run", lambda self, *a: runs.append(1) or real_run(self, *a))
    ids = []
    gen.generate(["ab"], chosen, 20, 2 if case == "batch 2" else 1, seed=0, token_ids=ids)
    assert runs == []
    assert [len(row) for row in ids] == [20] * len(ids)     # generated, the torch way


@needs_kernel
def test_the_loop_is_made_only_for_a_plain_choice_at_batch_1(monkeypatch):
    """top-k or a repetition penalty never fold a table or build the kernel."""
    gen, session = generator(specials=())
    made = []
    real = LSTMStepper.token_loop
    monkeypatch.setattr(LSTMStepper, "token_loop", lambda *a: made.append(1) or real(*a))
    for options in ({"type": "top-k", "k": 3}, {"type": "greedy", "repetition_penalty": 1.3}):
        gen.generate(["ab"], session.strategy(options), 5, 1, seed=0)
    gen.generate(["ab"], session.strategy("random"), 5, 2, seed=0)
    assert made == []
    gen.generate(["ab"], session.strategy("random"), 5, 1, seed=0)
    assert made == [1]


@needs_kernel
def test_the_kernel_refuses_mismatched_shapes():
    """A table of another vocabulary than the head's would be read out of bounds."""
    cell, table, head = parts()
    with torch.inference_mode():
        _, stepper, loop, logits = start(cell, table, head)
        loop.table = loop.table[:-1].contiguous()                         # [V-1, 4H]
        with pytest.raises(RuntimeError, match="table must be contiguous float32 of shape"):
            loop.run(logits, 3, 0.0, None, None, True)


@needs_kernel
def test_argmax_takes_the_first_of_equal_maxima_as_torch():
    cell, table, head = parts()
    with torch.inference_mode():
        _, _, loop, _ = start(cell, table, head)
        tied = torch.tensor([0.0, 2.0, 1.0, 2.0, 2.0, -1.0, 0.0, 2.0, 0.5])  # [V]
        tokens, _ = loop.run(tied.clone(), 1, 0.0, None, None, step_last=False)
    assert int(tokens[0]) == int(tied.argmax()) == 1


@needs_kernel
def test_chunks_double_up_to_256_or_64_when_the_text_is_read(monkeypatch):
    """A stream or stop strings read the text: smaller chunks bound the steps taken past
    a stop (a row that ends mid-chunk has stepped on to the chunk's end)."""
    gen, session = generator(specials=())
    chosen = session.strategy("random")
    counts = []
    real_run = TokenLoop.run
    monkeypatch.setattr(TokenLoop, "run", lambda self, logits, count, *a:
                        counts.append(count) or real_run(self, logits, count, *a))
    gen.generate(["ab"], chosen, 700, 1, seed=0)
    assert counts == [8, 16, 32, 64, 128, 256, 196]
    counts.clear()
    "".join(gen.stream("ab", chosen, 300, seed=0))
    assert counts == [8, 16, 32, 64, 64, 64, 52]
