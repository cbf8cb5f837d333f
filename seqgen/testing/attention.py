"""Contract checks for attention plugins.

A plugin author holds an attention to the rules of `seqgen.Attention` (the ones the
built-ins pass) with one call in their own tests:

    from seqgen.testing import check_attention

    def test_my_attention_keeps_the_contract():
        check_attention(MyAttention, query_size=6, memory_size=8, options={"size": 4})

Each property is checked on tiny sizes (B=3, S=5) with the module in eval mode, except
gradients (train mode). A broken property raises AssertionError whose message starts
with its name, e.g. "attention contract 'masking' failed for ...".
"""
from __future__ import annotations

from functools import partial

import torch

from ..attention import Attention, weighted_sum
from .contract import contract_property

BATCH, STEPS = 3, 5
# Ragged masks, every row with at least one real position: right-padded rows of every
# length 1..S, then left-padded and gappy rows.
MASKS = (
    [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]],
    [[1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]],
    [[0, 0, 1, 1, 1], [0, 1, 0, 1, 0], [0, 0, 0, 0, 1]],
)


def check_attention(factory, query_size: int = 6, memory_size: int = 6,
                    options: dict | None = None, *, seed: int = 0,
                    atol: float = 1e-5) -> None:
    """Build `factory(query_size, memory_size, **options)` and check every property.

    Properties: "type" (a seqgen.Attention with those sizes), "determinism" (two builds
    under one seed have equal parameters), "shapes" (context [B, context_size], weights
    [B, S]), "weights" (>= 0, < 1e-6 at masked positions, summing to 1 over the real
    ones, for ragged masks), "context" (the weighted sum of memory rows, when
    context_size == memory_size), "masking" (memory at masked positions changes
    nothing), "rows" (a batch's rows equal each row run alone), "keys" (passing
    `keys=attention.keys(memory)` equals keys=None), "static" (a static attention's
    weights ignore the query), "single" (a row with one real position: weight 1 there,
    nothing NaN) and "gradients" (in train mode every parameter, the memory and, unless
    static, the query get a finite, non-zero gradient). Tensors are compared with `atol`
    (float32). The global RNG is left as it was.
    """
    options = dict(options or {})
    name = getattr(factory, "__name__", factory)
    label = f"{name}(query_size={query_size}, memory_size={memory_size}, **{options})"
    close = partial(torch.testing.assert_close, atol=atol, rtol=0)
    with torch.random.fork_rng():
        torch.manual_seed(seed + 1)
        query = torch.randn(BATCH, query_size)                      # [B, Q]
        memory = torch.randn(BATCH, STEPS, memory_size)             # [B, S, M]
        masks = [torch.tensor(m, dtype=torch.bool) for m in MASKS]  # [B, S] each
        with _property("type", label):
            attention = _build(factory, query_size, memory_size, options, seed)
            assert isinstance(attention, Attention), (
                f"factory returned {type(attention).__name__}, not a seqgen.Attention")
            sizes = (attention.query_size, attention.memory_size)
            assert sizes == (query_size, memory_size), (
                f"query_size, memory_size are {sizes}, not {(query_size, memory_size)}")
            attention.eval()
        with _property("determinism", label):
            _check_determinism(attention, _build(factory, query_size, memory_size,
                                                 options, seed))
        run = partial(_run, attention)
        with torch.no_grad():
            with _property("shapes", label):
                _check_shapes(attention, run(query, memory, masks[0]))
            with _property("weights", label):
                for mask in masks:
                    _check_weights(run(query, memory, mask)[1], mask)
            if attention.context_size == memory_size:
                with _property("context", label):
                    for mask in masks:
                        context, weights = run(query, memory, mask)
                        close(context, weighted_sum(weights, memory),
                              msg=lambda m: f"context is not the weighted sum of memory: {m}")
            with _property("masking", label):
                _check_masking(run, query, memory, masks, close)
            with _property("rows", label):
                _check_rows(run, query, memory, masks, close)
            with _property("keys", label):
                for mask in masks:
                    given = attention(query, memory, mask, keys=attention.keys(memory))
                    for a, b, what in zip(given, run(query, memory, mask), ("context", "weights")):
                        close(a, b, msg=lambda m: f"{what} differs when keys=attention.keys"
                                                  f"(memory) is passed: {m}")
            if attention.static:
                with _property("static", label):
                    for mask in masks:
                        close(run(torch.randn_like(query), memory, mask)[1],
                              run(query, memory, mask)[1],
                              msg=lambda m: f"a static attention's weights depend on the "
                                            f"query: {m}")
            with _property("single", label):
                _check_single(run, query, memory)
        with _property("gradients", label):
            _check_gradients(attention, query, memory, masks[1])


def _property(name: str, label: str):
    return contract_property("attention", name, label)


def _build(factory, query_size: int, memory_size: int, options: dict, seed: int):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return factory(query_size, memory_size, **options)


def _run(attention: Attention, query, memory, mask) -> tuple[torch.Tensor, torch.Tensor]:
    result = attention(query, memory, mask)
    assert isinstance(result, tuple) and len(result) == 2, (
        f"forward returned {type(result).__name__}, not a (context, weights) tuple")
    return result


def _check_determinism(first: Attention, second: Attention) -> None:
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys(), f"two builds have different parameters: {list(a)} vs {list(b)}"
    for key in a:
        assert torch.equal(a[key], b[key]), f"two builds under one seed differ in {key!r}"


def _check_shapes(attention: Attention, result) -> None:
    context, weights = result
    expected = (BATCH, attention.context_size)
    assert tuple(context.shape) == expected, (
        f"context has shape {tuple(context.shape)}, expected {expected} [B, context_size]")
    assert tuple(weights.shape) == (BATCH, STEPS), (
        f"weights have shape {tuple(weights.shape)}, expected {(BATCH, STEPS)} [B, S]")


def _check_weights(weights: torch.Tensor, mask: torch.Tensor) -> None:
    rows = mask.int().tolist()
    assert torch.isfinite(weights).all(), f"weights are not finite for mask {rows}"
    assert (weights >= 0).all(), f"negative weights {weights.tolist()} for mask {rows}"
    leaked = weights.masked_fill(mask, 0).abs().max().item()
    assert leaked < 1e-6, f"weight {leaked:g} at a masked position for mask {rows}"
    sums = (weights * mask).sum(dim=1)                              # [B]
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5), (
        f"weights over real positions sum to {sums.tolist()}, not 1, for mask {rows}")


def _check_masking(run, query, memory, masks, close) -> None:
    for mask in masks:
        noisy = memory.masked_fill(~mask.unsqueeze(-1), 0) \
            + torch.randn_like(memory) * 100 * (~mask).unsqueeze(-1)   # [B, S, M]
        for a, b, what in zip(run(query, noisy, mask), run(query, memory, mask),
                              ("context", "weights")):
            close(a, b, msg=lambda m: f"changing memory at masked positions changes the "
                                      f"{what} (mask {mask.int().tolist()}): {m}")


def _check_rows(run, query, memory, masks, close) -> None:
    for mask in masks:
        context, weights = run(query, memory, mask)
        for b in range(BATCH):
            alone = run(query[b:b + 1], memory[b:b + 1], mask[b:b + 1])
            for a, whole, what in zip(alone, (context[b:b + 1], weights[b:b + 1]),
                                      ("context", "weights")):
                close(a, whole, msg=lambda m: f"row {b}'s {what} alone differs from in "
                                              f"the batch: {m}")


def _check_single(run, query, memory) -> None:
    mask = torch.zeros(BATCH, STEPS, dtype=torch.bool)
    mask[torch.arange(BATCH), torch.tensor([0, STEPS // 2, STEPS - 1])] = True
    context, weights = run(query, memory, mask)
    assert torch.isfinite(context).all() and torch.isfinite(weights).all(), (
        "NaN or inf with a single real position per row")
    assert torch.allclose(weights[mask], torch.ones(BATCH), atol=1e-5), (
        f"a row's only real position gets weight {weights[mask].tolist()}, not 1")


def _check_gradients(attention: Attention, query, memory, mask) -> None:
    attention.train()
    try:
        attention.zero_grad()
        query = query.clone().requires_grad_(True)
        memory = memory.clone().requires_grad_(True)
        loss = torch.zeros(())
        for keys in (None, attention.keys(memory)):   # the model's path passes keys
            context, weights = attention(query, memory, mask, keys=keys)
            # Random coefficients: weights sum to 1, so their plain sum has no gradient.
            loss = loss + (context * torch.randn_like(context)).sum() \
                + (weights * torch.randn_like(weights)).sum()
        loss.backward()
    finally:
        attention.eval()
    inputs = [("memory", memory)] + ([] if attention.static else [("query", query)])
    for name, p in [*inputs, *attention.named_parameters()]:
        if not p.requires_grad:
            continue
        assert p.grad is not None, f"no gradient reaches {name!r}"
        assert torch.isfinite(p.grad).all(), f"gradient of {name!r} is not finite"
        assert p.grad.abs().sum() > 0, f"gradient of {name!r} is all zeros"
