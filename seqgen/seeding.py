"""A run's random numbers: explicit generators derived from its seed, never the process's.

Everything random in a run draws from a `torch.Generator` of its own, derived from the
spec's seed and a purpose name, so a run changes no process-global RNG (torch's, Python's
`random`, numpy's) and two runs on two threads give exactly what they give one after the
other:

    model initialisation  generator(seed, "init")     initialize() below
    dropout               generator(seed, "dropout")  seqgen.dropout(x, p, training)
    sampler order         the sampler's (seed, epoch) generators (plugins/samplers)
    strategy draws        the trainer's and generator's own (train.py, generate.py)

Two things cannot take a generator: the constructors of torch modules (they initialise
from torch's global generator) and torch's fused RNN kernels when they apply dropout.
For those, `global_rng(generator)` seeds torch's global generator from ours inside a
fork that restores it afterwards, under one process-wide lock, so concurrent seqgen runs
never interleave their use of it and the host's state is left as it was. A cell that
draws only through `seqgen.dropout` says so with `Cell.explicit_randomness = True`, and
the trainer then calls it without the lock.
"""
from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
import threading
import zlib
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_GLOBAL_RNG_LOCK = threading.RLock()
# The dropout generator of the forward pass running in this thread (or task), if any.
_dropout_generator: contextvars.ContextVar[torch.Generator | None] = contextvars.ContextVar(
    "seqgen_dropout_generator", default=None)


def generator(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for one purpose of one run: independent streams for "init", "dropout",
    ... from the same seed (numpy's SeedSequence mixes the two)."""
    mixed = np.random.SeedSequence([seed % 2**63, zlib.crc32(purpose.encode())])
    return torch.Generator(device=device).manual_seed(int(mixed.generate_state(1, np.uint64)[0]))


@contextlib.contextmanager
def global_rng(source: torch.Generator) -> Iterator[None]:
    """Run code that can only draw from torch's global generator (module constructors,
    fused dropout) with that generator seeded from `source`, restoring it afterwards.
    Holds a process-wide lock: concurrent seqgen runs take turns here."""
    seed = int(torch.randint(0, 2**62, (1,), generator=source, device=source.device))
    devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def dropout_generator(g: torch.Generator | None) -> Iterator[None]:
    """While active (in this thread or task only), `seqgen.dropout` draws from `g`."""
    token = _dropout_generator.set(g)
    try:
        yield
    finally:
        _dropout_generator.reset(token)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Dropout that draws its mask from the running forward pass's generator (the run's
    "dropout" stream); outside a run, like torch.nn.functional.dropout. Cells use it
    instead of F.dropout so that training never touches torch's global generator."""
    if not training or p == 0.0:
        return x
    g = _dropout_generator.get()
    if g is None:
        return F.dropout(x, p, True)
    if p >= 1.0:
        return x * 0.0
    return x * keep_mask(x.shape, 1.0 - p, g, x.device, x.dtype)


MASK_BITS = 16          # random bits per mask entry: keep probabilities in steps of 2**-16


def keep_mask(shape: torch.Size, keep: float, generator: torch.Generator,
              device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[shape] of 0 and 1/keep, each entry 1/keep with probability round(keep * 2**16) /
    2**16 (within 8e-6 of `keep`): inverted dropout's scaled mask.

    Each int64 draw gives four entries' 16 bits. On CPU, bernoulli_ (what F.dropout uses)
    costs ~9 ns an entry: at [100, 64, 512] it took 28 ms of a 112 ms training step here,
    where this mask takes ~6 ms (randint 3 ms + compare and scale)."""
    n = math.prod(shape)
    words = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64,
                          generator=generator, device=device)
    bits = words.view(torch.int16)[:n].view(shape)                    # uniform in int16
    threshold = round(keep * (1 << MASK_BITS)) - (1 << (MASK_BITS - 1))
    return (bits < threshold).to(dtype) * (1.0 / keep)


# -- initialisation ------------------------------------------------------------------------

def _takes_generator(module: nn.Module) -> bool:
    reset = getattr(module, "reset_parameters", None)
    if reset is None:
        return False
    try:
        return "generator" in inspect.signature(reset).parameters
    except (TypeError, ValueError):
        return False


def _uniform(tensors, bound: float, g: torch.Generator) -> None:
    for t in tensors:
        if t is not None:
            nn.init.uniform_(t, -bound, bound, generator=g)


def initialize(model: nn.Module, g: torch.Generator) -> None:
    """Draw every parameter torch's modules (and modules with `reset_parameters(generator)`)
    own again from `g`, with torch's default distributions:

        nn.Linear        weight, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        nn.RNN/GRU/LSTM  every parameter ~ U(-1/sqrt(H), 1/sqrt(H))
        nn.Embedding     weight ~ N(0, 1)
        nn.LayerNorm     ones and zeros (nothing random)

    Parameters of other modules keep the values they were built with (under global_rng,
    so they too follow from the seed). Modules are visited in registration order, so the
    same model and seed always draw the same numbers."""
    with torch.no_grad():
        for module in model.modules():
            if _takes_generator(module):
                module.reset_parameters(generator=g)
            elif isinstance(module, nn.Linear):
                _uniform((module.weight, module.bias), 1.0 / math.sqrt(max(module.in_features, 1)), g)
            elif isinstance(module, nn.RNNBase):
                _uniform(module.parameters(recurse=False), 1.0 / math.sqrt(module.hidden_size), g)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 1.0, generator=g)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].fill_(0.0)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
