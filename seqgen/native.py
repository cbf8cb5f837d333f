"""C++ kernels that plugins build on first use: `seqgen.load_native`.

A cell (or any plugin) that ships a C++ source next to its module gets it compiled by
torch.utils.cpp_extension the first time it asks (tens of seconds; then cached per
machine under torch's extensions directory, so later processes load it at once). Where
it cannot be built (no C++ compiler, no ninja, a failed build) the process is told once
on stderr and gets None, so the plugin keeps its plain-torch path. SEQGEN_NATIVE=0
turns every such kernel off.

On x86-64 Linux with AVX2 the sources are compiled for AVX2/FMA with -ffast-math and
-fopenmp-simd, linking glibc's vector maths (libmvec): `#pragma omp simd` loops then
call vectorised exp and friends. The build's name carries that choice, so a build for
another CPU never loads here.
"""
from __future__ import annotations

import os
import platform
import sys
import threading
import time
from pathlib import Path

import torch

_lock = threading.Lock()
_loaded: dict[str, object] = {}       # name -> the extension module, or None


def native_flags() -> tuple[list[str], list[str], str]:
    """(compiler flags, linker flags, a suffix naming them) for this machine."""
    capability = torch.backends.cpu.get_cpu_capability()
    if (sys.platform.startswith("linux") and platform.machine() == "x86_64"
            and capability in ("AVX2", "AVX512")):
        return (["-O3", "-mavx2", "-mfma", "-ffast-math", "-fopenmp-simd"], ["-lmvec"],
                "avx2")
    return ["-O3"], [], "generic"


def load_native(module_file: str, source: str, name: str, *, openmp: bool = False):
    """The extension built from `source` (a file beside `module_file`, e.g. the calling
    plugin's __file__), named `name` (unique to the kernel and its version); None where
    it cannot be built or SEQGEN_NATIVE=0. Built at most once per process.

    openmp: compile with -fopenmp, so at::parallel_for in the source runs on torch's
    intra-op threads (without it, it runs serially). The extension then shares torch's
    OpenMP runtime (the same libgomp.so.1, already loaded)."""
    if name in _loaded:
        return _loaded[name]
    with _lock:
        if name not in _loaded:
            _loaded[name] = _build(Path(module_file).with_name(source), name, openmp)
    return _loaded[name]


def _build(path: Path, name: str, openmp: bool):
    if os.environ.get("SEQGEN_NATIVE", "1") == "0":
        return None
    from torch.utils import cpp_extension
    cflags, ldflags, suffix = native_flags()
    if openmp:
        cflags, ldflags, suffix = cflags + ["-fopenmp"], ldflags + ["-fopenmp"], suffix + "_omp"
    full = f"{name}_{suffix}"
    _clear_stale_lock(cpp_extension, full)
    if not _built_before(cpp_extension, full):
        print(f"seqgen: building the C++ kernel {path.name} (once per machine, about 30 s)",
              file=sys.stderr)
    try:
        return cpp_extension.load(name=full, sources=[str(path)],
                                  extra_cflags=cflags, extra_ldflags=ldflags, verbose=False)
    except Exception as error:   # no compiler, no ninja, a failed build: the torch path
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"warning: seqgen could not build the C++ kernel {path.name}, so the slower "
              f"torch path runs instead: {first}", file=sys.stderr)
        return None


def _built_before(cpp_extension, name: str) -> bool:
    """Whether torch's extensions directory holds a build of `name` (then loading takes
    a moment, not a compile). True when that cannot be told (a private torch helper)."""
    try:
        directory = cpp_extension._get_build_directory(name, verbose=False)
    except Exception:
        return True
    return os.path.exists(os.path.join(directory, f"{name}.so"))


STALE_LOCK_SECONDS = 600     # a build takes well under a minute


def _clear_stale_lock(cpp_extension, name: str) -> None:
    """Remove a build lock left by a process killed mid-build: torch waits on it forever.
    One older than STALE_LOCK_SECONDS cannot belong to a build still running."""
    try:
        lock = os.path.join(cpp_extension._get_build_directory(name, verbose=False), "lock")
        if time.time() - os.path.getmtime(lock) > STALE_LOCK_SECONDS:
            os.remove(lock)
            print(f"seqgen: removed a stale build lock left by an interrupted build: {lock}",
                  file=sys.stderr)
    except OSError:
        pass                     # no lock (the usual case), or it went away meanwhile
    except Exception:
        pass                     # torch's private helper changed: leave it to torch
