"""The `init` option: how a cell's recurrent weights are drawn.

Applied by the module that owns the weights (`self.rnn`: torch's nn.RNN/GRU/LSTM
subclassed in fused.py, RecurrentWeights in weights.py) in its
`reset_parameters(generator=None)`, which seqgen's `initialize` calls with the run's
"init" generator (and the constructor calls with torch's global one). Both forms walk
the same parameters in the same order (torch's: per layer*direction w_ih, w_hh, b_ih,
b_hh) with the same draws, so a fused and a scratch cell of one family given the same
generator get equal state dicts.

    default     every parameter ~ U(-1/sqrt(H), 1/sqrt(H))   (torch's; biases too)
    normal      weights ~ N(0, std^2) (std 0.01), biases 0
    uniform     weights ~ U(-a, a) (a 0.1), biases 0
    xavier      each gate block of w_ih and w_hh ([H, I] and [H, H]) xavier_uniform,
                biases 0
    orthogonal  each gate block of w_hh ([H, H]) orthogonal, each gate block of w_ih
                xavier_uniform, biases 0

Gate blocks rather than whole matrices: each gate is a map of its own from x (or h) to H
units, so its fans are (I or H, H), and an orthogonal [H, H] block keeps every gate's
recurrent map norm-preserving (a whole [G*H, H] matrix cannot be orthogonal per gate).
"""
from __future__ import annotations

import math

import torch
from torch import nn

DEFAULT = {"type": "default"}
TYPES = ("default", "normal", "uniform", "xavier", "orthogonal")
PARAMETERS = {"normal": ("std", 0.01), "uniform": ("a", 0.1)}


def init_scheme(init) -> dict:
    """The `init` option ({"type": ..., "std"?/"a"?} or just the type name) checked and
    completed: {"type": "normal", "std": 0.01}, ... Raises ValueError."""
    if init is None:
        return dict(DEFAULT)
    if isinstance(init, str):
        init = {"type": init}
    if not isinstance(init, dict) or init.get("type") not in TYPES:
        raise ValueError(f"init must be an object whose type is one of {', '.join(TYPES)}, "
                         f"not {init!r}")
    kind = init["type"]
    allowed = PARAMETERS.get(kind)
    extra = set(init) - {"type"} - ({allowed[0]} if allowed else set())
    if extra:
        raise ValueError(f"init {kind!r} takes no {', '.join(sorted(extra))}")
    scheme = {"type": kind}
    if allowed:
        name, default = allowed
        value = init.get(name, default)
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value <= 0):
            raise ValueError(f"init {kind!r}: {name} must be a positive number, not {value!r}")
        scheme[name] = float(value)
    return scheme


def apply_init(all_weights, hidden_size: int, scheme: dict,
               generator: torch.Generator | None = None) -> None:
    """Draw `all_weights` ([w_ih, w_hh(, b_ih, b_hh)] per layer*direction, torch's
    order) in place by `scheme` (see init_scheme), from `generator` or torch's global."""
    kind, g, H = scheme["type"], generator, hidden_size
    with torch.no_grad():
        for w_ih, w_hh, *biases in all_weights:
            if kind == "default":
                bound = 1.0 / math.sqrt(H)
                for p in (w_ih, w_hh, *biases):
                    nn.init.uniform_(p, -bound, bound, generator=g)
                continue
            for w in (w_ih, w_hh):
                for block in w.split(H, 0):                       # per gate: [H, I] or [H, H]
                    if kind == "normal":
                        nn.init.normal_(block, 0.0, scheme["std"], generator=g)
                    elif kind == "uniform":
                        nn.init.uniform_(block, -scheme["a"], scheme["a"], generator=g)
                    elif kind == "orthogonal" and w is w_hh:
                        nn.init.orthogonal_(block, generator=g)
                    else:
                        nn.init.xavier_uniform_(block, generator=g)
            for b in biases:
                b.zero_()
