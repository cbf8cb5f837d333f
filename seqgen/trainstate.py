"""Training state as safetensors tensors plus JSON scalars, for exact resume. No pickle.

Optimizer state_dicts mix tensors (Adam's moments) and scalars (hyper-parameters); RNG
states are uint8 tensors. Tensors go under prefixed names ("optim.3.exp_avg"), and
everything else into one JSON document.
"""
from __future__ import annotations

import torch

from .state import State


# The training state a checkpoint's metadata holds under state.trainer (Trainer.
# training_state), as a JSON Schema: checkpoint.load validates it, so a damaged one is a
# CheckpointError naming the field, never a KeyError on resume. "integer" means a JSON
# integer (checkpoint_schema), not 2.0. PROGRESS_SCHEMA lists the fields of
# train.Progress (tests/test_robustness_checkpoints.py keeps them equal).
_INT, _NUM = {"type": "integer", "minimum": 0}, {"type": "number"}
PROGRESS_SCHEMA = {
    "type": "object",
    "required": ["epoch", "batch", "step"],
    "additionalProperties": False,
    "properties": {
        "epoch": _INT, "batch": _INT, "step": _INT, "tokens": _INT, "epoch_nll": _NUM,
        "epoch_tokens": _INT, "start_loss": {"type": ["number", "null"]},
        "best_valid": {"type": ["number", "null"]}, "bad_evals": _INT, "seconds": _NUM,
        "stopped": {"type": ["string", "null"]},
        "history": {"type": "array", "items": {"type": "object"}},
    },
}
TRAINER_SCHEMA = {
    "type": "object",
    "required": ["progress", "optimizer", "carry"],
    "properties": {
        "progress": PROGRESS_SCHEMA,
        "optimizer": {
            "type": "object",
            "required": ["param_groups", "scalars"],
            "properties": {
                "param_groups": {"type": "array", "items": {
                    "type": "object", "required": ["params"],
                    "properties": {"params": {"type": "array", "items": _INT}}}},
                # "<param index>.<key>": a non-tensor value of that parameter's state
                "scalars": {"type": "object", "propertyNames": {"pattern": r"^[0-9]+\.."}},
                # names of the tensors below; absent in checkpoints before it was recorded
                "tensors": {"type": "array", "items": {"type": "string",
                                                       "pattern": r"^optim\.[0-9]+\.."}},
            },
        },
        "carry": {"$ref": "#/$defs/carry"},
        # the ranks that trained it (absent before data-parallel training: one); rank r's
        # generators are rng.trainer.r and rng.dropout.r (rank 0's have no suffix)
        "world_size": {"type": "integer", "minimum": 1},
        "batches": {"type": "integer", "minimum": 1},     # the sampler's batches per epoch
        # train.amp "fp16": torch.amp.GradScaler.state_dict(), all JSON numbers
        "scaler": {"type": "object", "required": ["scale", "_growth_tracker"],
                   "properties": {"scale": {"type": "number", "exclusiveMinimum": 0},
                                  "_growth_tracker": _INT},
                   "additionalProperties": {"type": "number"}},
    },
    "$defs": {"carry": {"anyOf": [{"type": ["null", "string"]},
                                  {"type": "array", "items": {"$ref": "#/$defs/carry"}}]}},
}


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, param_state in sd["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars,
                     "tensors": sorted(tensors)}


def tensor_problems(tensors: dict, meta: dict) -> list[str]:
    """What is wrong with the tensors of the training state `meta` (valid against
    TRAINER_SCHEMA): optimizer or carried state it names but `tensors` lack, or holds
    under odd names; random generator states that are not bytes. Each names its tensor
    or field."""
    problems = []
    if lacking := [n for n in meta["optimizer"].get("tensors", []) if n not in tensors]:
        more = f" and {len(lacking) - 3} more" if len(lacking) > 3 else ""
        problems.append(f"tensor(s) of the optimizer state are missing: "
                        f"{', '.join(map(repr, lacking[:3]))}{more} (named in metadata "
                        f"'state': $.trainer.optimizer.tensors)")
    keys: dict[int, set] = {}      # older checkpoints: each parameter's state has the same keys
    for name in [n for n in tensors if n.startswith("optim.")] + list(meta["optimizer"]["scalars"]):
        index, _, key = name.removeprefix("optim.").partition(".")
        if not index.isdigit() or not key:
            problems.append(f"tensor {name!r} is not named optim.<parameter>.<key>")
            continue
        keys.setdefault(int(index), set()).add(key)
    every = set().union(*keys.values()) if keys else set()
    if not problems:
        problems += [f"the optimizer state of parameter {i} lacks {', '.join(sorted(every - k))}"
                     for i, k in sorted(keys.items()) if k != every]

    def names(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for n in node:
                yield from names(n)
    problems += [f"tensor {name!r} of the carried state (metadata 'state': $.trainer.carry) "
                 f"is missing" for name in names(meta["carry"]) if name not in tensors]
    problems += [f"tensor {name!r} (a random generator's state) is {t.dtype}, not torch.uint8"
                 for name, t in tensors.items()
                 if name.startswith("rng.") and t.dtype != torch.uint8]
    return problems


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (KeyError, TypeError, ValueError, RuntimeError) as e:   # groups that do not fit
        raise ValueError(f"metadata 'state': $.trainer.optimizer: {e}") from e


def state_to_flat(state: State, prefix: str = "carry") -> tuple[dict, object]:
    """A recurrent state (tensor or nested tuples) as named tensors plus its structure."""
    tensors = {}

    def walk(node):
        if node is None:
            return None
        if isinstance(node, torch.Tensor):
            name = f"{prefix}.{len(tensors)}"
            tensors[name] = node
            return name
        return [walk(n) for n in node]
    return tensors, walk(state)


def state_from_flat(tensors: dict, structure) -> State:
    if structure is None:
        return None
    if isinstance(structure, str):
        return tensors[structure]
    return tuple(state_from_flat(tensors, s) for s in structure)
