"""Mixed-precision training (`train.amp`): an autocast context and, for float16, a
gradient scaler.

    false          float32 throughout
    "bf16" / true  bfloat16 autocast, on CUDA and on CPU (torch has CPU kernels for it).
                   bfloat16 keeps float32's exponent range, so gradients need no scaling.
    "fp16"         float16 autocast with a GradScaler, on CUDA. float16's range is small:
                   the loss is multiplied by the scale before backward so small gradients
                   do not flush to zero; the gradients are unscaled before clipping (the
                   recorded grad norm is the true one); a step whose gradients overflowed
                   is skipped and the scale halved; after `growth_interval` good steps it
                   doubles. The scale and skips are logged per step (loss_scale,
                   amp_skipped), and the scaler's state is saved for exact resume.
                   Refused on CPU: torch's CPU kernels cannot train every cell in float16
                   (oneDNN has no float16 LSTM).
    "auto"         "bf16" where the device computes in bfloat16 natively: a CUDA GPU that
                   supports it, or a CPU with AVX512-BF16 or AMX (oneDNN's bfloat16
                   LSTM and matrix products: a 1x512 LSTM trains 2.4x faster here);
                   float32 elsewhere, where emulated bfloat16 would be slower. No warning
                   either way.

On other devices (mps) autocast is not applied and the run warns that amp has no effect.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .errors import SpecError

#: Where each mode runs; tests add "cpu" to FP16 to exercise the scaler on scratch cells.
DEVICES = {"bf16": ("cuda", "cpu"), "fp16": ("cuda",)}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    """mode: None (float32), "bf16" or "fp16" as applied on this device; scaler: a
    torch.amp.GradScaler for "fp16", else None."""
    mode: str | None
    device_type: str
    scaler: torch.amp.GradScaler | None = None

    def autocast(self):
        """The context the forward pass and loss run in."""
        if self.mode is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.mode])


def mode_of(amp, device_type: str | None = None) -> str | None:
    """The spec's train.amp (false, true, "bf16", "fp16", "auto") as None, "bf16" or
    "fp16"; "auto" on `device_type` (None: not known yet, taken as None)."""
    if amp is True:
        return "bf16"
    if amp == "auto":
        return "bf16" if device_type is not None and native_bf16(device_type) else None
    return amp or None


def native_bf16(device_type: str) -> bool:
    """Whether this machine's `device_type` computes in bfloat16 natively."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        probes = [getattr(torch.cpu, name, None) for name in
                  ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]   # private: guarded
        return any(probe() for probe in probes if probe is not None)
    return False


def precision_for(amp, device: torch.device) -> Precision:
    """What `train.amp` means on `device`; SpecError for "fp16" where it can't run.
    A mode the device lacks (bf16 on mps) is None here: the run warns (`ignored`)."""
    mode = mode_of(amp, device.type)
    if mode is None:
        return Precision(None, device.type)
    if (problem := amp_problem(amp, device.type)) is not None:
        raise SpecError([problem])
    if device.type not in DEVICES[mode]:
        return Precision(None, device.type)
    scaler = torch.amp.GradScaler(device.type) if mode == "fp16" else None
    return Precision(mode, device.type, scaler)


def amp_problem(amp, device_type: str) -> str | None:
    """Why train.amp can't run on this kind of device (a spec problem), or None."""
    if mode_of(amp) == "fp16" and device_type not in DEVICES["fp16"]:
        return ('$.train.amp: "fp16" needs a CUDA device, and this run is on '
                f'{device_type}: torch cannot train every cell in float16 there (oneDNN '
                'has no float16 LSTM). Use "bf16" (bfloat16 autocast, no scaler needed) '
                'or false.')
    return None


def ignored(amp, device: torch.device) -> str | None:
    """A warning when train.amp asks for something this device does not do, else None."""
    mode = mode_of(amp)
    if mode is not None and precision_for(amp, device).mode is None:
        return (f"$.train.amp: {mode} autocast is used on {' and '.join(DEVICES[mode])} "
                f"only; it has no effect on {device.type}")
    return None
