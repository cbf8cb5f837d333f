"""Training state as safetensors tensors plus JSON scalars, for exact resume. No pickle.

Optimizer state_dicts mix tensors (Adam's moments) and scalars (hyper-parameters); RNG
states are uint8 tensors. Tensors go under prefixed names ("optim.3.exp_avg"), and
everything else into one JSON document.
"""
from __future__ import annotations

import torch

from .state import State


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, param_state in sd["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


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
