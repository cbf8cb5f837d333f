"""Vocabulary: a deterministic map between tokens and ids, saved with every model.

Tokens are ordered specials first (in a fixed order), then the rest sorted, so the same
data gives the same ids in every process and on every run (never `list(set(text))`,
whose order changes with PYTHONHASHSEED).
"""
from __future__ import annotations

import copy
import json
import re
from collections import Counter
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .errors import GenerationError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_ORDER = (PAD, UNK, BOS, EOS)


def smallest_int_dtype(vocab_size: int) -> torch.dtype:
    """The narrowest torch integer type that holds ids 0..vocab_size-1."""
    for dtype in (torch.uint8, torch.int16, torch.int32):
        if vocab_size - 1 <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


class Vocab:
    """`level` is "char" (tokens are single characters, text joins with "") or "word"
    (tokens join with `separator`). `specials` are reserved tokens such as <unk>.

    The preprocessing the training text had travels with the vocabulary, so prompts and
    scored text are tokenised the same way: `newlines` ("keep", or "space": each newline
    becomes a space), `lowercase`, and for words the regex `pattern` (None: split on
    whitespace).

    Decoding shows <unk> as `unk_text`, "<unk>" unless set (a generated unknown word must
    not vanish from the text; `showing_unk_as("")` drops it on purpose); the other
    specials (<bos>, <eos>, <pad>) are structure, not text. `unk_text` is display only:
    it is not saved, and equal vocabularies may show <unk> differently."""

    unk_text: str = UNK

    def __init__(self, tokens: Sequence[str], level: str = "char", specials: Sequence[str] = (),
                 separator: str = " ", pattern: str | None = None, lowercase: bool = False,
                 newlines: str = "keep"):
        if newlines not in ("keep", "space"):
            raise ValueError(f"newlines must be 'keep' or 'space', not {newlines!r}")
        self.level = level
        self.separator = separator
        self.pattern, self.lowercase, self.newlines = pattern, lowercase, newlines
        self._regex = re.compile(pattern) if pattern else None
        self.specials = [s for s in SPECIAL_ORDER if s in specials] + sorted(
            s for s in specials if s not in SPECIAL_ORDER)
        rest = sorted(set(tokens) - set(self.specials))
        self.tokens: list[str] = self.specials + rest
        self.stoi = {t: i for i, t in enumerate(self.tokens)}
        self._table: np.ndarray | None = None  # code point -> id, built on first char encode

    @classmethod
    def from_text(cls, text: str, specials: Sequence[str] = (), lowercase: bool = False) -> "Vocab":
        """Every distinct character of `text`, found with a vectorised scan (an ASCII
        chunk: bytes.translate deleting the characters already seen, at memory speed)."""
        seen = np.zeros(UNICODE_SIZE, dtype=bool)
        ascii_seen = b""
        for _, chunk in text_chunks(text):
            if chunk.isascii():
                rest = chunk.encode("ascii").translate(None, ascii_seen)   # the new ones
                while rest:               # a few rounds: each deletes what a sample shows
                    new = bytes(set(rest[:4096]))
                    ascii_seen += new
                    rest = rest.translate(None, new)
            else:
                seen[np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), np.uint32)] = True
        seen[list(ascii_seen)] = True
        return cls([chr(c) for c in np.flatnonzero(seen)], level="char", specials=specials,
                   lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocab({len(self)} {self.level} tokens)"

    def id(self, token: str) -> int | None:
        return self.stoi.get(token)

    @property
    def unk_id(self) -> int | None:
        return self.stoi.get(UNK)

    @property
    def bos_id(self) -> int | None:
        return self.stoi.get(BOS)

    @property
    def eos_id(self) -> int | None:
        return self.stoi.get(EOS)

    @property
    def pad_id(self) -> int | None:
        return self.stoi.get(PAD)

    # -- encoding -------------------------------------------------------------------------
    def prepare(self, text: str) -> str:
        """Text preprocessed as the training text was (newlines, then lowercase)."""
        if self.newlines == "space":
            text = text.replace("\n", " ")
        return text.lower() if self.lowercase else text

    def shown(self, token: str) -> bool:
        """Whether a token appears in decoded text: every one but <bos>, <eos>, <pad>
        (and <unk> when unk_text is "")."""
        return (token == UNK and self.unk_text != "") or token not in self.specials

    def text_of(self, token: str) -> str:
        """What a shown token reads as in decoded text: itself, or unk_text for <unk>."""
        return self.unk_text if token == UNK else token

    def showing_unk_as(self, text: str) -> "Vocab":
        """A copy that decodes <unk> as `text` (e.g. "\u2047", "[UNK]"; "" drops it)."""
        if not isinstance(text, str):
            raise TypeError(f"unk_text must be a string, not {type(text).__name__}")
        other = copy.copy(self)
        other.unk_text = text
        return other

    def split(self, text: str) -> list[str]:
        """Text to tokens, without mapping to ids, preprocessed as the training text was."""
        text = self.prepare(text)
        if self.level == "char":
            return list(text)
        if self._regex is not None:
            return [m.group() for m in self._regex.finditer(text) if m.group()]
        return text.split()

    def continuation(self, prompt: str, text: str) -> str:
        """What to print after `prompt` for generated `text`: words need a separator."""
        if self.level == "word" and prompt and text and not prompt[-1].isspace():
            return self.separator + text
        return text

    def unknown(self, text: str) -> list[tuple[int, str]]:
        """(position, token) for every token of `text` outside the vocabulary."""
        return [(i, t) for i, t in enumerate(self.split(text)) if t not in self.stoi]

    def encode(self, text: str, on_unknown: str = "error", *,
               name: str = "vocabulary") -> torch.Tensor:
        """Ids of `text` as a 1-D tensor of the smallest integer type.

        on_unknown: "error" raises naming each unknown token and its position, "skip"
        drops them, "unk" maps them to <unk> (which must be in the vocabulary). name:
        what errors call this vocabulary (a seq2seq model's "source vocabulary").
        """
        if self.level == "char" and on_unknown == "error":
            return self._encode_chars(self.prepare(text), name)
        bad = self.unknown(text)
        if bad and on_unknown == "error":
            raise GenerationError(_describe_unknown(bad, name))
        if bad and on_unknown == "unk" and self.unk_id is None:
            raise GenerationError(f"on_unknown='unk' needs a {name} with <unk>; "
                                  + _describe_unknown(bad, name))
        ids = []
        for t in self.split(text):
            i = self.stoi.get(t)
            if i is None:
                if on_unknown == "skip":
                    continue
                i = self.unk_id
            ids.append(i)
        return torch.tensor(ids, dtype=smallest_int_dtype(len(self)))

    def _encode_chars(self, text: str, name: str = "vocabulary") -> torch.Tensor:
        # Vectorised: code points index a code-point -> id table, chunk by chunk (see
        # text_chunks). On a 100 MB corpus this is over 10x faster than
        # [stoi[c] for c in text] (benchmarks/data.py). Unknown characters map to a
        # marker one past the last id, found with one max() over the result.
        table, marker = self._char_table(), len(self)
        ids = np.empty(len(text), dtype=table.dtype)
        # ASCII chunks of a vocabulary whose ids (and marker) fit a byte: bytes.translate
        # maps them at memory speed, twice as fast as indexing the table
        byte_table = table[:256].tobytes() if table.dtype == np.uint8 else None
        for start, chunk in text_chunks(text):
            if byte_table is not None and chunk.isascii():
                ids[start:start + len(chunk)] = np.frombuffer(
                    chunk.encode("ascii").translate(byte_table), np.uint8)
            else:
                ids[start:start + len(chunk)] = table[points_of(chunk)]
        if len(ids) and ids.max() == marker:
            bad = np.flatnonzero(ids == marker)
            raise GenerationError(_describe_unknown([(int(i), text[i]) for i in bad], name))
        return torch.from_numpy(ids).to(smallest_int_dtype(len(self)))

    def _char_table(self) -> np.ndarray:
        """[0x110000] code point -> id (marker len(self) where unknown); 1-2 MB, cached."""
        if self._table is None:
            table = np.full(UNICODE_SIZE, len(self), dtype=smallest_int_dtype_np(len(self) + 1))
            for i, token in enumerate(self.tokens):
                if len(token) == 1:
                    table[ord(token)] = i
            self._table = table
        return self._table

    def decode(self, ids: Iterable[int] | torch.Tensor, skip_specials: bool = True) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        toks = [self.tokens[i] for i in ids]
        if skip_specials:
            toks = [self.text_of(t) for t in toks if self.shown(t)]
        return ("" if self.level == "char" else self.separator).join(toks)

    # -- persistence ------------------------------------------------------------------------
    # VOCAB_SCHEMA (below the class) describes what to_dict writes: change them together.
    def to_dict(self) -> dict:
        d = {"level": self.level, "tokens": self.tokens, "specials": self.specials,
             "separator": self.separator, "pattern": self.pattern, "lowercase": self.lowercase}
        if self.newlines != "keep":           # written only when it matters: older readers
            d["newlines"] = self.newlines     # of "keep" vocabularies see no new key
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        """The inverse of to_dict. `d` is trusted to match VOCAB_SCHEMA (checkpoint.load
        validates it); what a schema cannot say is checked here (ValueError)."""
        v = cls(d["tokens"], level=d["level"], specials=d.get("specials", ()),
                separator=d.get("separator", " "), pattern=d.get("pattern"),
                lowercase=d.get("lowercase", False), newlines=d.get("newlines", "keep"))
        if v.tokens != list(d["tokens"]):
            twice = next((t for t, n in Counter(d["tokens"]).items() if n > 1), None)
            raise ValueError(f"$.tokens: {twice!r} appears twice" if twice is not None else
                             "$.tokens: not in canonical order (specials first, then the "
                             "rest sorted)")
        return v

    @classmethod
    def from_json(cls, s: str) -> "Vocab":
        """From to_json's text. Untrusted text: validate it against VOCAB_SCHEMA first
        (checkpoint_schema.parse_metadata does), or expect KeyError/TypeError here."""
        return cls.from_dict(json.loads(s))

    def difference(self, other: "Vocab") -> str | None:
        """A short description of how `other` differs, or None when they are equal."""
        if self == other:
            return None
        parts = []
        if self.level != other.level:
            parts.append(f"level {self.level!r} vs {other.level!r}")
        missing = [t for t in other.tokens if t not in self.stoi]
        extra = [t for t in self.tokens if t not in other.stoi]
        if missing:
            parts.append(f"{len(missing)} token(s) not in the model's vocabulary: {_preview(missing)}")
        if extra:
            parts.append(f"{len(extra)} model token(s) absent from the data: {_preview(extra)}")
        mine = (self.pattern, self.lowercase, self.newlines)
        if not parts and mine != (other.pattern, other.lowercase, other.newlines):
            parts.append(f"tokenisation differs (pattern {self.pattern!r} vs {other.pattern!r}, "
                         f"lowercase {self.lowercase} vs {other.lowercase}, newlines "
                         f"{self.newlines!r} vs {other.newlines!r})")
        if not parts:
            parts.append("same tokens in a different order")
        return "; ".join(parts)


# What Vocab.to_dict writes (a checkpoint's metadata 'vocab'), as a JSON Schema. Only
# level and tokens are required: vocabularies saved before tokenisation travelled with
# them have no pattern or lowercase. Unknown keys are refused: each key decides how text
# is tokenised, so one this version does not understand must not be silently ignored.
VOCAB_SCHEMA = {
    "type": "object",
    "required": ["level", "tokens"],
    "additionalProperties": False,
    "properties": {
        "level": {"enum": ["char", "word"]},
        "tokens": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "specials": {"type": "array", "items": {"type": "string"}},
        "separator": {"type": "string"},
        "pattern": {"type": ["string", "null"], "format": "regex"},
        "lowercase": {"type": "boolean"},
        "newlines": {"enum": ["keep", "space"]},
    },
}

UNICODE_SIZE = 0x110000
CHUNK = 1 << 23   # characters per chunk: at most 32 MB of UTF-32 temporaries at a time


def text_chunks(text: str) -> Iterator[tuple[int, str]]:
    """(start, chunk) for consecutive chunks of CHUNK characters of `text`."""
    for start in range(0, len(text), CHUNK):
        yield start, text[start:start + CHUNK]


def points_of(chunk: str) -> np.ndarray:
    """[n] code points of `chunk`: uint8 for ASCII (an O(1) check and a memcpy in
    CPython), uint32 otherwise."""
    if chunk.isascii():
        return np.frombuffer(chunk.encode("ascii"), np.uint8)
    return np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), np.uint32)



def smallest_int_dtype_np(vocab_size: int):
    return {torch.uint8: np.uint8, torch.int16: np.int16, torch.int32: np.int32,
            torch.int64: np.int64}[smallest_int_dtype(vocab_size)]


def _preview(tokens: list[str], n: int = 10) -> str:
    shown = ", ".join(repr(t) for t in tokens[:n])
    return shown + (f", … ({len(tokens) - n} more)" if len(tokens) > n else "")


def _describe_unknown(bad: list[tuple[int, str]], name: str = "vocabulary") -> str:
    shown = ", ".join(f"{t!r} at {i}" for i, t in bad[:10])
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    return (f"{len(bad)} token(s) not in the {name}: {shown}{more}. "
            "Remove them, or skip them or map them to <unk> (on_unknown 'skip' or 'unk'; "
            "--on-unknown on the command line).")


