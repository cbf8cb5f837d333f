"""Checkpoints: safetensors for tensors, JSON strings for everything else. No pickle.

A checkpoint is one .safetensors file. Tensors are the model's state_dict under
"model.", plus optional extra groups (optimizer state, ...) under their own prefixes.
The header metadata (str -> str) holds JSON: the resolved spec, the vocabulary, the task,
the versions that wrote it, the plugin and distribution behind every component the spec
names, and any scalar training state. Loading reads only tensors and
JSON, so a checkpoint from a stranger can never run code; it checks that JSON against its
schemas (checkpoint_schema.py) and every tensor for NaN, so damage is one CheckpointError
naming the file and the field, whoever loads it.
"""
from __future__ import annotations

import json
import stat
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import __version__
from .atomic import atomic_path
from .checkpoint_schema import parse_metadata
from .errors import CheckpointError
from .paths import kind_of
from .vocab import Vocab

FORMAT = "seqgen-checkpoint"
FORMAT_VERSION = "1"
LAST_FILE = "last.safetensors"   # in a run directory: weights + training state
BEST_FILE = "best.safetensors"   # weights with the best validation loss


@dataclass
class Checkpoint:
    spec: dict
    vocab: Vocab
    task: str
    tensors: dict[str, torch.Tensor]            # flat, prefixed ("model.cell.rnn.weight_ih_l0")
    state: dict = field(default_factory=dict)   # JSON-able scalars: step, epoch, rng, ...
    versions: dict = field(default_factory=dict)
    # {path, kind, name, plugin, distribution, version} of every component the spec names,
    # so a missing plugin can be named with what to install. Empty in older checkpoints.
    components: list = field(default_factory=list)
    # A seq2seq model's source vocabulary when it has its own (None: shared, or a language model)
    source_vocab: Vocab | None = None

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under `prefix.`, with the prefix removed."""
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}


def save(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write atomically: a temporary file in the same directory, then a rename."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in checkpoint.tensors.items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": json.dumps(checkpoint.spec, ensure_ascii=False),
        "vocab": checkpoint.vocab.to_json(),
        "task": checkpoint.task,
        "state": json.dumps(checkpoint.state),
        "versions": json.dumps({"seqgen": __version__, "torch": torch.__version__}),
        "components": json.dumps(checkpoint.components, ensure_ascii=False),
    }
    if checkpoint.source_vocab is not None:
        metadata["source_vocab"] = checkpoint.source_vocab.to_json()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def first_detail(error: RuntimeError) -> str:
    """The useful line of torch's load_state_dict error ("size mismatch for ...")."""
    lines = [l.strip() for l in str(error).strip().splitlines() if l.strip()]
    detail = lines[1] if len(lines) > 1 else lines[0] if lines else repr(error)
    more = len(lines) - 2
    return detail + (f" (and {more} more)" if more > 0 else "")


def resolve_path(path: str | Path) -> Path:
    """A checkpoint file, or a run directory: its best checkpoint, else its last."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST_FILE if (path / BEST_FILE).exists() else path / LAST_FILE
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    return path


def load(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint: every metadata field against its schema
    (checkpoint_schema.py), every tensor finite. Damage is one CheckpointError naming the
    file and the field or tensor."""
    path = resolve_path(path)
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):        # a FIFO would block the reader forever
        raise CheckpointError(f"{path}: is {kind_of(mode)}, not a checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({e})") from e
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seqgen checkpoint (metadata 'format' is "
                              f"{meta.get('format')!r}, expected {FORMAT!r})")
    values, problems = parse_metadata(meta)
    vocab = source_vocab = None
    for name in ("vocab", "source_vocab") if not problems else ():
        try:
            if values[name] is not None:
                read = Vocab.from_dict(values[name])
                vocab, source_vocab = (read, source_vocab) if name == "vocab" else (vocab, read)
        except ValueError as e:          # what the schema cannot say (canonical order)
            problems.append(f"metadata {name!r}: {e}")
    if problems:
        raise CheckpointError(f"{path}: " + "; ".join(problems))
    for name, t in tensors.items():      # NaN weights would otherwise generate silently
        if (t.is_floating_point() or t.is_complex()) and not torch.isfinite(t).all():
            bad = t.numel() - int(torch.isfinite(t).sum())
            raise CheckpointError(f"{path}: tensor {name!r} holds {bad} NaN or infinite "
                                  f"value(s) of {t.numel()}: the file is damaged, or was "
                                  f"saved after training diverged")
    return Checkpoint(spec=values["spec"], vocab=vocab, task=values["task"], tensors=tensors,
                      state=values["state"], versions=values["versions"],
                      components=values["components"], source_vocab=source_vocab)
