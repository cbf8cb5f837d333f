"""Built-in attentions ("none", "bahdanau", "luong"): each keeps the seqgen.Attention
contract, each computes what its paper (and d2l) says on hand-checked examples, and
seqgen.testing.check_attention catches deliberately broken attentions."""
from __future__ import annotations

import inspect
import math

import jsonschema
import pytest
import torch

import seqgen
from seqgen import Attention, SpecError, masked_softmax, weighted_sum
from seqgen.testing import check_attention

SESSION = seqgen.Session(entry_points=False)
BUILTINS = ("none", "bahdanau", "luong")
# (name, options, query_size, memory_size): defaults, every option, unequal sizes.
VARIANTS = [
    ("none", {}, 6, 6), ("none", {}, 4, 9),
    ("bahdanau", {}, 6, 6), ("bahdanau", {"size": 3}, 5, 8), ("bahdanau", {"size": None}, 7, 4),
    ("luong", {}, 6, 6), ("luong", {"score": "general", "scale": True}, 4, 9),
    ("luong", {"score": "dot"}, 6, 6), ("luong", {"score": "dot", "scale": True}, 5, 5),
]


def build(session, name: str, query_size: int, memory_size: int, **options) -> Attention:
    return session.component("attention", name).build({"type": name, **options},
                                                      query_size, memory_size)


def test_the_builtins_are_registered(session):
    assert set(BUILTINS) <= set(session.registry.names("attention"))
    for name in BUILTINS:
        component = session.component("attention", name)
        assert component.description
        jsonschema.Draft202012Validator.check_schema(component.schema)


@pytest.mark.parametrize("name, options, query_size, memory_size", VARIANTS)
def test_builtins_keep_the_contract(name, options, query_size, memory_size):
    factory = SESSION.component("attention", name).factory
    check_attention(factory, query_size, memory_size, options)


@pytest.mark.parametrize("name", BUILTINS)
def test_schema_defaults_are_the_constructors_defaults(session, name):
    component = session.component("attention", name)
    parameters = inspect.signature(component.factory).parameters
    properties = component.schema["properties"]
    assert set(properties) == set(parameters) - {"query_size", "memory_size"}
    for option, spec in properties.items():
        assert spec["default"] == parameters[option].default, option


@pytest.mark.parametrize("name, options", [("bahdanau", {"size": 0}),
                                           ("bahdanau", {"size": 2.5}),
                                           ("luong", {"score": "cosine"}),
                                           ("luong", {"scale": "yes"}),
                                           ("none", {"size": 3})])
def test_schemas_refuse_bad_options(session, name, options):
    schema = {**session.component("attention", name).schema, "additionalProperties": False}
    assert not jsonschema.Draft202012Validator(schema).is_valid(options)


def test_only_none_is_static(session):
    assert [build(session, n, 4, 4).static for n in BUILTINS] == [True, False, False]


def test_bahdanau_equals_d2l_additive_attention_by_hand(session):
    torch.manual_seed(0)
    attention = build(session, "bahdanau", 3, 2, size=4)
    assert attention.W_q.weight.shape == (4, 3) and attention.W_k.weight.shape == (4, 2)
    query = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]])               # [B=2, Q=3]
    memory = torch.tensor([[[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]],
                           [[2.0, -2.0], [0.3, 0.7], [9.0, 9.0]]])          # [B, S=3, M=2]
    lengths = [3, 2]
    mask = torch.arange(3) < torch.tensor(lengths).unsqueeze(1)              # [B, S]
    context, weights = attention(query, memory, mask)
    W_q, W_k = attention.W_q.weight.detach(), attention.W_k.weight.detach()
    v = attention.w_v.weight.detach()[0]                                    # [H]
    for b in range(2):
        scores = [float(v @ torch.tanh(W_q @ query[b] + W_k @ memory[b, s]))
                  for s in range(lengths[b])]
        total = sum(math.exp(x) for x in scores)
        expected = [math.exp(x) / total for x in scores] + [0.0] * (3 - lengths[b])
        assert weights[b].tolist() == pytest.approx(expected, abs=1e-6)
        by_hand = sum(expected[s] * memory[b, s] for s in range(3))
        torch.testing.assert_close(context[b], by_hand, atol=1e-6, rtol=0)


def test_bahdanau_size_defaults_to_the_query_size(session):
    assert build(session, "bahdanau", 5, 3).W_q.out_features == 5
    assert build(session, "bahdanau", 5, 3, size=2).W_k.out_features == 2


QUERY = torch.tensor([[1.0, 0.0], [0.0, 2.0]])                              # [B=2, Q=2]
MEMORY = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]],
                       [[1.0, 1.0], [0.0, -1.0], [5.0, 5.0]]])              # [B, S=3, M=2]
MASK = torch.tensor([[True, True, False], [True, True, True]])


def _softmax(scores):
    total = sum(math.exp(x) for x in scores)
    return [math.exp(x) / total for x in scores]


@pytest.mark.parametrize("scale", [False, True])
def test_luong_dot_weights_are_the_softmax_of_dot_products(session, scale):
    attention = build(session, "luong", 2, 2, score="dot", scale=scale)
    assert list(attention.parameters()) == []
    context, weights = attention(QUERY, MEMORY, MASK)
    div = math.sqrt(2) if scale else 1.0
    # row 0: q.m = 1, 0, (2 masked); row 1: q.m = 2, -2, 10
    expected = [_softmax([1 / div, 0.0]) + [0.0], _softmax([2 / div, -2 / div, 10 / div])]
    assert weights.tolist()[0] == pytest.approx(expected[0], abs=1e-6)
    assert weights.tolist()[1] == pytest.approx(expected[1], abs=1e-6)
    torch.testing.assert_close(context, weighted_sum(weights, MEMORY))


def test_luong_general_is_q_W_m(session):
    torch.manual_seed(1)
    attention = build(session, "luong", 2, 3)                               # score "general"
    W = attention.W.weight.detach()                                         # [Q=2, M=3]
    assert W.shape == (2, 3)
    query, memory = torch.randn(2, 2), torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    _, weights = attention(query, memory, mask)
    scores = torch.stack([torch.stack([query[b] @ W @ memory[b, s] for s in range(4)])
                          for b in range(2)])                               # [B, S]
    torch.testing.assert_close(weights, masked_softmax(scores, mask), atol=1e-6, rtol=0)


def test_luong_dot_with_unequal_sizes_is_a_spec_error(session):
    with pytest.raises(SpecError, match=r"(?s)dot.*\b4\b.*\b6\b.*general"):
        build(session, "luong", 4, 6, score="dot")
    build(session, "luong", 4, 6, score="general")                          # the way out


def test_luong_refuses_an_unknown_score():
    factory = SESSION.component("attention", "luong").factory
    with pytest.raises(SpecError, match="cosine"):
        factory(4, 4, score="cosine")


def test_none_reads_the_last_real_position(session):
    attention = build(session, "none", 2, 2)
    assert list(attention.parameters()) == []
    memory = torch.arange(24, dtype=torch.float32).reshape(3, 4, 2)         # [B=3, S=4, M=2]
    mask = torch.tensor([[True, True, True, False],
                         [True, False, False, False],
                         [False, True, False, True]])
    context, weights = attention(torch.randn(3, 2), memory, mask)
    assert weights.tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    assert context.tolist() == [memory[0, 2].tolist(), memory[1, 0].tolist(),
                                memory[2, 3].tolist()]


def test_equal_seeds_build_equal_weights(session):
    for name in ("bahdanau", "luong"):
        torch.manual_seed(3)
        first = build(session, name, 4, 5).state_dict()
        torch.manual_seed(3)
        second = build(session, name, 4, 5).state_dict()
        assert first and all(torch.equal(first[k], second[k]) for k in first)


# --- check_attention catches broken attentions --------------------------------------

class Scored(Attention):
    """A correct dot-product attention the broken ones below override pieces of."""

    def __init__(self, query_size, memory_size):
        super().__init__(query_size, memory_size)
        self.W = torch.nn.Linear(memory_size, query_size, bias=False)

    def scores(self, query, memory):
        return torch.bmm(self.W(memory), query.unsqueeze(-1)).squeeze(-1)   # [B, S]

    def normalise(self, scores, mask):
        return masked_softmax(scores, mask)

    def forward(self, query, memory, mask, keys=None):
        weights = self.normalise(self.scores(query, memory), mask)
        return weighted_sum(weights, memory), weights


class IgnoresMask(Scored):
    def normalise(self, scores, mask):
        return torch.softmax(scores, dim=-1)


class NotNormalised(Scored):
    def normalise(self, scores, mask):
        return torch.exp(scores) * mask


class LeaksWeight(Scored):
    def normalise(self, scores, mask):
        return masked_softmax(scores, mask) + 0.01 * ~mask           # real ones still sum to 1


class MixesRows(Scored):
    def scores(self, query, memory):
        return super().scores(query, memory) * query.norm()     # depends on the whole batch


class WrongKeys(Scored):
    def keys(self, memory):
        return memory

    def forward(self, query, memory, mask, keys=None):
        if keys is not None:
            return super().forward(query, memory * 2, mask)
        return super().forward(query, memory, mask)


class UnusedParameter(Scored):
    def __init__(self, query_size, memory_size):
        super().__init__(query_size, memory_size)
        self.unused = torch.nn.Parameter(torch.ones(3))


class NanOnSingle(Scored):
    def normalise(self, scores, mask):
        weights = masked_softmax(scores, mask)
        single = mask.sum(dim=1, keepdim=True) == 1
        return torch.where(single, torch.full_like(weights, float("nan")), weights)


class NotAnAttention(torch.nn.Module):
    def __init__(self, query_size, memory_size):
        super().__init__()


def test_check_attention_passes_the_correct_reference():
    check_attention(Scored, 4, 6)


@pytest.mark.parametrize("factory, prop", [
    (IgnoresMask, "weights"), (NotNormalised, "weights"), (LeaksWeight, "weights"),
    (NanOnSingle, "weights"),        # the kit's masks include rows of one real position
    (MixesRows, "rows"), (WrongKeys, "keys"), (UnusedParameter, "gradients"),
    (NotAnAttention, "type"),
])
def test_check_attention_catches_broken_attentions(factory, prop):
    with pytest.raises(AssertionError, match=f"attention contract '{prop}' failed"):
        check_attention(factory, 4, 6)


class ReadsPadding(Scored):
    """Its context is one wider than the memory (so not checked against weighted_sum),
    and that extra column is read from the last position, padding or not."""

    def __init__(self, query_size, memory_size):
        super().__init__(query_size, memory_size)
        self.context_size = memory_size + 1

    def forward(self, query, memory, mask, keys=None):
        context, weights = super().forward(query, memory, mask)
        return torch.cat([context, memory[:, -1, :1]], dim=1), weights     # [B, M + 1]


def test_check_attention_catches_reading_masked_memory():
    with pytest.raises(AssertionError, match="attention contract 'masking' failed"):
        check_attention(ReadsPadding, 4, 6)


def test_check_attention_catches_a_wrong_context_size():
    class WrongSize(ReadsPadding):
        def forward(self, query, memory, mask, keys=None):
            return Scored.forward(self, query, memory, mask)               # [B, M], not M + 1

    with pytest.raises(AssertionError, match="attention contract 'shapes' failed"):
        check_attention(WrongSize, 4, 6)


def test_check_attention_catches_a_context_that_is_not_the_weighted_sum():
    class Shifted(Scored):
        def forward(self, query, memory, mask, keys=None):
            context, weights = super().forward(query, memory, mask)
            return context + 1, weights

    with pytest.raises(AssertionError, match="attention contract 'context' failed"):
        check_attention(Shifted, 4, 6)


def test_check_attention_catches_a_static_attention_that_reads_the_query():
    class FalselyStatic(Scored):
        static = True

    with pytest.raises(AssertionError, match="attention contract 'static' failed"):
        check_attention(FalselyStatic, 4, 6)
