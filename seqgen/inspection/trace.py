"""Run a model over one text and record what happens inside it, token by token.

    inspection = trace(model, vocab, ids, top_k=5)

For each token t_j of the text (j = 0..T-1), after the model has read t_0..t_j:
- every layer's gates and states (the cell's `inspect`, or its states when it has none);
- the probability it gives the actual next token t_{j+1}, and its top-k guesses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..model import LanguageModel
from ..vocab import Vocab

#: Longer texts make pages and JSON files too big to be useful (T x H x series values).
MAX_TOKENS = 5000
#: Values (tokens x units x series, all layers) an inspection may write: about 25 MB of
#: JSON, which a browser still opens quickly.
MAX_VALUES = 2_500_000


@dataclass(frozen=True)
class LayerTrace:
    """One layer and direction of the cell over the text.

    name:      "layer 0", or "layer 0 reverse" for a bidirectional cell's backward half
    layer:     0-based layer index; direction: 0 forward, 1 reverse
    series:    name -> [T, H] float tensor on the CPU, per token and unit: the gates
               (LSTM "i", "f", "g", "o"; GRU "r", "z", "n") and states ("h", LSTM "c")
    source:    "cell" (the cell's own inspect), "state" (its state after each step) or
               "output" (a bidirectional cell without inspect: the top layer's output)
    """
    name: str
    layer: int
    direction: int
    series: dict[str, torch.Tensor]
    source: str


@dataclass(frozen=True)
class Inspection:
    """What `LoadedModel.inspect(text)` returns: a model read over one text.

    tokens:     the text's tokens, as the vocabulary splits it (T of them)
    ids:        their ids
    next_prob:  per token j, p(tokens[j+1] | tokens[:j+1]); None for the last token
    top:        per token j, the top-k (token, probability) for position j+1, best first
    layers:     LayerTrace per layer*D + direction
    level, separator: the vocabulary's ("char": tokens join with "")
    cell:       the cell's registered type
    """
    tokens: list[str]
    ids: list[int]
    next_prob: list[float | None]
    top: list[list[tuple[str, float]]]
    layers: list[LayerTrace]
    level: str = "char"
    separator: str = " "
    cell: str = ""

    def surprise(self) -> list[float | None]:
        """Per token j, -ln p(tokens[j] | tokens[:j]) in nats; None for the first token,
        which nothing predicts."""
        return [None] + [None if p is None else _nats(p) for p in self.next_prob[:-1]]

    def mean_surprise(self) -> float | None:
        """Mean surprise over the predicted tokens (the score's loss); None for one token."""
        values = [s for s in self.surprise() if s is not None]
        return sum(values) / len(values) if values else None

    def to_dict(self) -> dict:
        """JSON-able: what inspect.json holds (values rounded to 5 significant digits)."""
        surprise = self.surprise()
        return {
            "cell": self.cell, "level": self.level, "separator": self.separator,
            "tokens": [{"token": tok, "id": i, "surprise": _round(s),
                        "next": None if p is None else {"token": self.tokens[j + 1],
                                                        "prob": _round(p)},
                        "top": [{"token": t, "prob": _round(q)} for t, q in top]}
                       for j, (tok, i, s, p, top) in enumerate(
                           zip(self.tokens, self.ids, surprise, self.next_prob, self.top))],
            "layers": [{"name": lt.name, "layer": lt.layer, "direction": lt.direction,
                        "source": lt.source,
                        "series": {name: [[_round(v) for v in row] for row in values.tolist()]
                                   for name, values in lt.series.items()}}
                       for lt in self.layers],
        }


def _nats(p: float) -> float:
    return math.inf if p <= 0.0 else -math.log(p)


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return value
    return float(f"{value:.5g}")


@torch.no_grad()
def trace(model: LanguageModel, vocab: Vocab, ids: torch.Tensor, top_k: int = 5,
          cell_type: str = "") -> Inspection:
    """Read ids [T] through `model` as one row from its initial state and record it all
    (see the module docstring). The model is put in eval mode for the call."""
    T = int(ids.numel())
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        ids = ids.long().view(T, 1).to(device)                          # [T, 1]
        logits, _ = model(ids)                                          # [T, 1, V]
        x = model.embedding(ids)                                        # [T, 1, E]
        layers = _layer_traces(model.cell, x)
    finally:
        model.train(was_training)
    probs = logits[:, 0].float().softmax(-1).cpu()                      # [T, V]
    k = min(top_k, probs.shape[1])
    best_p, best_i = probs.topk(k, dim=-1)                              # [T, k]
    flat = ids.view(T).cpu()
    next_prob = [float(probs[j, flat[j + 1]]) for j in range(T - 1)] + [None]
    top = [[(vocab.tokens[i], float(p)) for p, i in zip(ps.tolist(), is_.tolist())]
           for ps, is_ in zip(best_p, best_i)]
    return Inspection([vocab.tokens[i] for i in flat.tolist()], flat.tolist(), next_prob,
                      top, layers, vocab.level, vocab.separator, cell_type)


def _layer_traces(cell, x: torch.Tensor) -> list[LayerTrace]:
    """x [T, 1, E] -> a LayerTrace per layer*D + direction, tensors [T, H] on the CPU."""
    D = cell.num_directions
    recorded = cell.inspect(x)
    if recorded is not None:
        source = "cell"
    elif D == 1:
        recorded, source = _stepped_states(cell, x), "state"
    else:   # the reverse half needs the whole text: only the top layer's output is seen
        output, _ = cell(x)                                             # [T, 1, H*D]
        halves = output[:, 0].view(len(x), D, cell.hidden_size)
        return [LayerTrace(f"layer {cell.num_layers - 1}" + (" reverse" if d else ""),
                           cell.num_layers - 1, d, {"output": halves[:, d].float().cpu()},
                           "output") for d in range(D)]
    return [LayerTrace(f"layer {index // D}" + (" reverse" if index % D else ""),
                       index // D, index % D,
                       {name: value[:, 0].float().cpu() for name, value in series.items()},
                       source)
            for index, series in enumerate(recorded)]


def _stepped_states(cell, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Call the cell one step at a time and keep its state after each: per layer,
    {"h"} (or {"h", "c"} for a two-part state; "state 0", ... for more), each [T, 1, H]."""
    state, after = None, []
    for t in range(len(x)):
        _, state = cell(x[t:t + 1], state)
        parts = state if isinstance(state, (tuple, list)) else (state,)
        after.append(tuple(parts))                                      # each [L, 1, H]
    count = len(after[0])
    names = ("h", "c") if count == 2 else ("h",) if count == 1 else tuple(
        f"state {i}" for i in range(count))
    return [{name: torch.stack([parts[i][layer] for parts in after])
             for i, name in enumerate(names)}
            for layer in range(cell.num_layers)]
