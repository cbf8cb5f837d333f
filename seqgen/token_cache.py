"""A corpus encoded once into a file of token ids, memory-mapped by every run that reads it.

    cache = TokenCache(directory, name="corpus", files=[...], options={...})
    found = cache.load()              # (vocab, ids, info) when the cache is current, else None
    vocab, ids, info = found or cache.store(vocab, id_chunks, info)

On disk, in `directory/<name>-<key>/` (key: a digest of the files' absolute paths and
the options, so each tokenisation of each corpus has its own entry):

    ids.bin         the ids, raw, in the smallest integer dtype for the vocabulary
    manifest.json   the files (path, size, mtime), the corpus hash, the options, the
                    vocabulary, the dtype and count of the ids, and `info`

The manifest is written last, each file whole or not at all (temp file + rename), so a
cache is either complete or absent. It is current when its files still have the sizes
and modification times it recorded; a changed corpus is encoded again (`load` returns
None). `ids` is a read-only-in-practice tensor over a private memory map of ids.bin
(copy-on-write: nothing is ever written back), so the corpus is paged in as samplers read
windows, never loaded whole, and processes on one machine share the same pages.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from .atomic import atomic_path, write_text
from .errors import DataError
from .vocab import Vocab, smallest_int_dtype, smallest_int_dtype_np

FORMAT = 1


def file_signature(path: Path) -> dict:
    """What says a file is unchanged: its absolute path, size and modification time."""
    st = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class TokenCache:
    """See the module docstring. `files`: the corpus files, in reading order; `options`:
    everything (JSON-able) that changes the ids made from them."""

    def __init__(self, directory: str | Path, name: str, files: list[Path], options: dict):
        self.files = [file_signature(f) for f in files]
        key = json.dumps({"files": [f["path"] for f in self.files], "options": options},
                         sort_keys=True)
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).hexdigest()
        self.options = options
        self.path = Path(directory) / f"{name}-{digest}"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def ids_path(self) -> Path:
        return self.path / "ids.bin"

    def load(self) -> tuple[Vocab, torch.Tensor, dict] | None:
        """(vocab, ids [N] memory-mapped, info) when the cache is complete and its corpus
        unchanged; None otherwise (missing, stale, or damaged: it is simply rebuilt)."""
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            if (manifest.get("format") != FORMAT or manifest.get("files") != self.files
                    or manifest.get("options") != self.options):
                return None
            vocab = Vocab.from_dict(manifest["vocab"])
            dtype = smallest_int_dtype(len(vocab))
            count = int(manifest["count"])
            if manifest.get("dtype") != str(dtype) or count < 1:
                return None
            ids = _map(self.ids_path, smallest_int_dtype_np(len(vocab)), count)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return vocab, ids, {**manifest.get("info", {}), "cache": str(self.path),
                            "cache_hit": True}

    def store(self, vocab: Vocab, chunks: Iterable[np.ndarray], info: dict,
              corpus_hash: str | None = None) -> tuple[Vocab, torch.Tensor, dict]:
        """Write the ids (`chunks`: arrays of ids in order, any integer dtype) and the
        manifest; return what `load` would. DataError when the directory can't be written."""
        np_dtype = smallest_int_dtype_np(len(vocab))
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            count = 0
            with atomic_path(self.ids_path) as tmp, open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(np.ascontiguousarray(chunk, dtype=np_dtype).tobytes())
                    count += len(chunk)
            if count == 0:
                raise DataError(f"{self.path}: the corpus has no tokens to cache")
            manifest = {"format": FORMAT, "files": self.files, "hash": corpus_hash,
                        "options": self.options, "vocab": vocab.to_dict(), "count": count,
                        "dtype": str(smallest_int_dtype(len(vocab))), "info": info}
            write_text(self.manifest_path, json.dumps(manifest, ensure_ascii=False) + "\n")
        except OSError as e:
            raise DataError(f"{self.path}: cannot write the token cache: "
                            f"{e.strerror or e}; set dataset.cache_dir to a writable "
                            "directory") from None
        ids = _map(self.ids_path, np_dtype, count)
        return vocab, ids, {**info, "cache": str(self.path), "cache_hit": False}


def _map(path: Path, dtype, count: int) -> torch.Tensor:
    """[count] ids over a private (copy-on-write) memory map of `path`."""
    if os.path.getsize(path) != count * np.dtype(dtype).itemsize:
        raise ValueError(f"{path}: size does not match the manifest")
    return torch.from_numpy(np.memmap(path, dtype=dtype, mode="c", shape=(count,)))
