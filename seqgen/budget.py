"""Memory estimates: refuse a run or a generation that cannot fit, before it starts.

A spec can ask for more than any machine holds (`synthetic` with num_chars 10**12,
num_samples 10**8): without a check it hangs or is killed by the OS after a long wait.
From the resolved spec alone (and the sizes of the corpus files) this module estimates
the peak bytes of each part of a run:

    data        the corpus as text, token ids and the copies made while reading it
    model       parameters x (weights, gradients, optimizer state, checkpoint copy)
    batch       one training batch's activations, kept for the backward pass
    generation  prompts x rows per prompt (num_samples; beam: 2 x width) x (vocabulary
                logits + state per row, and every generated token as ids, log-probs and
                Python numbers)

The peak is data + model + the larger of batch and generation (training ends before the
final generation starts). Every estimate leans high (a few times the bytes the tensors
themselves hold) but stays far below a gigabyte for every example and preset. When the
peak exceeds the memory available now (MemAvailable in /proc/meminfo, within a cgroup
limit if there is one; on CUDA, the device's free memory for the model, batch and
generation), the run is refused with a `MemoryLimitError` (a SpecError, exit 2) naming
the field most responsible, its estimate and what is available, e.g.

    $.dataset.num_chars: 1000000000000 characters would need about 8.0 TB of memory,
    more than the 21.3 GB available (to try anyway, set SEQGEN_MEMORY_CHECK=off)

Where available memory cannot be read, nothing is refused. The override is the
environment variable SEQGEN_MEMORY_CHECK=off (also 0, false, no): one switch for the CLI
and the Python API alike.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .errors import SpecError

ENV = "SEQGEN_MEMORY_CHECK"
OFF = ("off", "0", "false", "no")

# Bytes per character of corpus while a dataset is built: the decoded text, the copies
# made while joining, cleaning and slicing it, code-point chunks and the id stream.
# Word level adds a Python string per word (~60 bytes for ~5 characters).
CHAR_BYTES, WORD_BYTES = 8, 16
READ_BYTES = 3            # per byte of a corpus file: the bytes read, the str, one join
PARAM_BYTES = 24          # float32 weight + gradient + 2 Adam moments + checkpoint copies
ROW_STEP_BYTES = 64       # per generated token per row: ids + log-probs, stacked, as lists
SYNTHETIC_VOCAB = 64      # the built-in grammar uses under 30 characters
CHAR_VOCAB, WORD_VOCAB = 256, 50_000   # upper guesses when the corpus is not read yet
STREAMED_BYTES = 300 * 2**20   # encoding pieces into a token cache (benchmarks/corpus_cache.py)
DEFAULT_SEQUENCE = 128    # time steps of a batch whose sampler has no num_steps


class MemoryLimitError(SpecError):
    """A run or generation estimated to need more memory than is available (exit 2)."""

    def __init__(self, problems: list[str], source: str | None = None):
        super().__init__(problems, source)
        where = f"{source}: " if source else ""
        Exception.__init__(self, f"{where}too large for the memory available: "
                                 + "; ".join(self.problems))


@dataclass(frozen=True)
class Need:
    """One part of a run's memory: the field most responsible, what it asks for in
    words, and the estimated bytes; `device` is True for memory on the accelerator."""
    field: str
    what: str
    bytes: int
    device: bool = False


# -- the switch and what is available ------------------------------------------------------
def enabled(env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(ENV, "on")
    return value.strip().lower() not in OFF


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def host_available() -> int | None:
    """Bytes of RAM a new allocation can get now, or None when it cannot be told."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            pass
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 2**60:   # v1 "no limit" is ~2**63
            found.append(max(cap - used, 0))
    try:   # an address-space limit (ulimit -v) caps what this process may allocate
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            found.append(max(soft - _resident(), 0))
    except (ImportError, OSError, ValueError):
        pass
    found = [n for n in found if n > 0]
    return min(found) if found else None


def _resident() -> int:
    """Bytes of address space this process already uses (VmSize), 0 when unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def device_available(device) -> int | None:
    """Free bytes on a CUDA device, or None for the host (or when it cannot be told)."""
    try:
        import torch
        if getattr(device, "type", device) != "cuda" or not torch.cuda.is_available():
            return None
        return int(torch.cuda.mem_get_info(device if hasattr(device, "type") else None)[0])
    except Exception:   # a driver that cannot answer is no reason to refuse a run
        return None


def _spec_device(name: str):
    """The device a spec's "device" will pick, as far as memory is concerned."""
    if name == "cuda" or name == "auto":
        try:
            import torch
            return "cuda" if torch.cuda.is_available() else "cpu"
        except Exception:
            return "cpu"
    return name


# -- estimates -----------------------------------------------------------------------------
def fmt(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def corpus_bytes(options: dict) -> tuple[int, int] | None:
    """(files, total bytes) of the regular files a dataset's path/paths name, or None
    when it names none (missing files and non-regular ones are the dataset's to report)."""
    names = options.get("paths") if isinstance(options.get("paths"), list) else (
        [options["path"]] if isinstance(options.get("path"), str) else None)
    if not names:
        return None
    files, total = 0, 0
    for name in names:
        if not isinstance(name, str):
            continue
        matches = glob.glob(name, recursive=True) if set("*?[") & set(name) else []
        for path in matches or [name]:
            try:
                st = os.stat(path)
            except (OSError, ValueError):
                continue
            if os.path.isfile(path):
                files, total = files + 1, total + st.st_size
    return files, total


def data_need(dataset: dict) -> tuple[Need | None, int]:
    """(the dataset's Need or None, an upper guess of the vocabulary size)."""
    word = dataset.get("level") == "word"
    if isinstance(dataset.get("num_chars"), int):
        chars = dataset["num_chars"]
        vocab = SYNTHETIC_VOCAB if dataset.get("type") == "synthetic" else min(chars, CHAR_VOCAB)
        return Need("$.dataset.num_chars", f"{chars} characters",
                    chars * (WORD_BYTES if word else CHAR_BYTES)), vocab
    if isinstance(dataset.get("text"), str):          # the corpus is in the spec itself
        size = len(dataset["text"])
        chars = min(size, _int(dataset.get("max_chars"), size))
        vocab = min(chars // 4 + 1, WORD_VOCAB) if word else min(chars, CHAR_VOCAB)
        return Need("$.dataset.text", f"{size} characters of text",
                    chars * (WORD_BYTES if word else CHAR_BYTES)), vocab + 4
    found = corpus_bytes(dataset)
    if dataset.get("cache") is True and found is not None and found[0]:
        files, size = found              # streamed into a memory-mapped token cache
        field = "$.dataset.paths" if "paths" in dataset else "$.dataset.path"
        vocab = WORD_VOCAB if word else CHAR_VOCAB
        return Need(field, f"{files} file{'s' if files != 1 else ''} of {fmt(size)}, "
                    "streamed through a token cache", STREAMED_BYTES), vocab + 4
    if found is None and isinstance(dataset.get("pairs"), list):    # the text is in the spec
        text = sum(len(s) for pair in dataset["pairs"] if isinstance(pair, list)
                   for s in pair if isinstance(s, str))
        return None, min(max(text, 1), CHAR_VOCAB) + 4
    if found is None or found[0] == 0:      # nothing to measure (yet): guess the vocabulary
        return None, (WORD_VOCAB if word else CHAR_VOCAB) + 4
    files, size = found
    chars = min(size, _int(dataset.get("max_chars"), size))
    field = "$.dataset.paths" if "paths" in dataset else "$.dataset.path"
    vocab = min(chars // 4 + 1, WORD_VOCAB) if word else min(chars, CHAR_VOCAB)
    total = size * READ_BYTES + chars * (WORD_BYTES if word else CHAR_BYTES)
    return Need(field, f"{files} file{'s' if files != 1 else ''} of {fmt(size)}", total), vocab + 4


@dataclass(frozen=True)
class Shape:
    """What memory per token depends on in a model: vocabulary, input size, hidden
    size, layers, directions, gate blocks per layer."""
    vocab: int
    inputs: int
    hidden: int
    layers: int
    directions: int
    gates: int

    @property
    def parameters(self) -> int:
        n, width = 0, self.inputs
        for _ in range(self.layers):
            n += self.directions * self.gates * self.hidden * (width + self.hidden + 2)
            width = self.hidden * self.directions
        embedding = self.vocab * self.inputs if self.inputs != self.vocab else 0
        return n + embedding + width * self.vocab + self.vocab

    @property
    def state_bytes(self) -> int:           # h and c of every layer and direction, float32
        return self.layers * self.directions * self.hidden * 2 * 4


def gates_of(cell_type: str) -> int:
    name = cell_type.lower()
    return 3 if "gru" in name else 1 if "rnn" in name and "lstm" not in name else 4


def larger_side(model: dict) -> str:
    """A seq2seq model's side ("encoder" or "decoder") with the larger cell: its shape
    stands for the model's in the estimate (both hold a batch of states; the decoder
    also the logits, which the vocabulary term counts)."""
    def size(side: str) -> int:
        part = model.get(side) if isinstance(model.get(side), dict) else {}
        cell = part.get("cell") if isinstance(part.get("cell"), dict) else {}
        return (_int(cell.get("hidden_size"), 128) * _int(cell.get("num_layers"), 1)
                * (2 if cell.get("bidirectional") else 1))
    return "encoder" if size("encoder") > size("decoder") else "decoder"


def model_shape(model: dict, vocab: int) -> Shape:
    if model.get("type") == "seq2seq":
        side = model.get(larger_side(model))
        model = side if isinstance(side, dict) else {}
    cell, emb = model.get("cell") or {}, model.get("embedding") or {}
    inputs = _int(emb.get("size"), 64) if emb.get("type") == "learned" else vocab
    return Shape(vocab, inputs, _int(cell.get("hidden_size"), 128),
                 _int(cell.get("num_layers"), 1), 2 if cell.get("bidirectional") else 1,
                 gates_of(str(cell.get("type", "lstm"))))


def shape_of(model, vocab: int) -> Shape:
    """The Shape of a built LanguageModel (for generation from a checkpoint): its
    parameter count is exact; state size is read from the cell where it says."""
    cell = getattr(model, "cell", None) or getattr(model, "decoder", None)   # seq2seq: decoder
    hidden = _int(getattr(cell, "hidden_size", None), 0)
    layers = _int(getattr(cell, "num_layers", None), 1)
    directions = 2 if getattr(cell, "bidirectional", False) else 1
    params = sum(p.numel() for p in model.parameters())
    if not hidden:   # unknown cell: treat its parameters as one big state-sized layer
        hidden = max(int((params / 4) ** 0.5), 1)
    return Shape(vocab, vocab, hidden, layers, directions, 4)


def model_need(shape: Shape, device: bool, field: str = "$.model.cell.hidden_size") -> Need:
    n = shape.parameters
    return Need(field, f"a model of {n:,} parameters (with its "
                f"gradients and optimizer state)", n * PARAM_BYTES, device)


def batch_need(sampler: dict, shape: Shape, device: bool) -> Need:
    rows = _int(sampler.get("batch_size"), 32)
    steps = _int(sampler.get("num_steps"), DEFAULT_SEQUENCE)
    per_token = (shape.inputs * 4                                   # the input (one-hot: V)
                 + shape.layers * shape.directions * shape.hidden * (shape.gates + 2) * 4 * 3
                 + shape.vocab * 4 * 4)                             # logits, softmax, grads
    return Need("$.sampler.batch_size", f"a training batch of {rows} x {steps} tokens",
                rows * steps * per_token * 2, device)


def generation_bytes(rows: int, steps: int, prompt_len: int, shape: Shape) -> int:
    per_row = (shape.state_bytes * 2 + shape.vocab * 4 * 8 + shape.vocab
               + steps * ROW_STEP_BYTES
               + max(prompt_len, 1) * (shape.vocab + shape.layers * shape.directions
                                       * shape.hidden * shape.gates) * 4 * 2)
    return rows * per_row


def generation_need(prompts: list, num_samples: int, steps: int, widths: Iterable[int],
                    shape: Shape, device: bool, fields: Mapping[str, str]) -> Need:
    """Generation of num_samples per prompt, steps new tokens each; `widths` are the beam
    widths of the strategies that search (2 x width rows per prompt). `fields` names the
    num_samples, max_new_tokens and width fields for the message."""
    prompts = list(prompts) or [""]
    per_prompt, field = num_samples, fields["num_samples"]
    for width in widths:
        if 2 * width > per_prompt:
            per_prompt, field = 2 * width, fields["width"]
    if steps > max(per_prompt, 1000) and field == fields["num_samples"]:
        field = fields["max_new_tokens"]
    longest = max((len(p) for p in prompts if isinstance(p, str)), default=0)
    rows = len(prompts) * per_prompt
    what = (f"generating {len(prompts)} prompt{'s' if len(prompts) != 1 else ''} x "
            f"{per_prompt} rows x {steps} new tokens (vocabulary {shape.vocab})")
    return Need(field, what, generation_bytes(rows, steps, longest, shape), device)


def run_needs(spec: dict) -> list[Need]:
    """The parts of a resolved spec's peak memory (see the module docstring)."""
    on_device = _spec_device(spec.get("device", "cpu")) == "cuda"
    data, vocab = data_need(spec["dataset"])
    examples = spec["dataset"].get("num_examples")
    if isinstance(examples, int) and not isinstance(examples, bool):   # pairs: a few
        vocab = min(vocab, examples * _int(spec["dataset"].get("max_length"), 20) * 2 + 4)
    shape = model_shape(spec["model"], vocab)
    gen = spec["generate"]
    widths = [_int(s.get("width"), 0) for s in gen["strategies"] if "width" in s]
    index = next((i for i, s in enumerate(gen["strategies"]) if "width" in s), 0)
    generation = generation_need(
        gen["prompts"], gen["num_samples"] if gen["strategies"] else 1, gen["max_new_tokens"],
        widths, shape, on_device,
        {"num_samples": "$.generate.num_samples", "max_new_tokens": "$.generate.max_new_tokens",
         "width": f"$.generate.strategies[{index}].width"})
    sampler = spec["sampler"]
    if isinstance(spec["dataset"].get("max_length"), int) and "num_steps" not in sampler:
        sampler = {**sampler, "num_steps": spec["dataset"]["max_length"] + 1}   # pairs (+<eos>)
    batch = batch_need(sampler, shape, on_device)
    needs = [data] if data is not None else []
    seq2seq = spec["model"].get("type") == "seq2seq"
    field = (f"$.model.{larger_side(spec['model'])}.cell.hidden_size" if seq2seq
             else "$.model.cell.hidden_size")
    return needs + [model_need(shape, on_device, field),
                    max(batch, generation, key=lambda n: n.bytes)]


# -- checking --------------------------------------------------------------------------------
def refusal(needs: list[Need], host: int | None, device: int | None) -> str | None:
    """The problem to report when the needs exceed what is available, else None."""
    for on_device, available in ((False, host), (True, device)):
        pool = [n for n in needs if n.device == on_device]
        if available is None or not pool:
            continue
        total = sum(n.bytes for n in pool)
        if total <= available:
            continue
        worst = max(pool, key=lambda n: n.bytes)
        whole = (f" ({fmt(total)} with the rest of the run)"
                 if total > worst.bytes * 1.1 else "")
        where = "free on the GPU" if on_device else "available"
        return (f"{worst.field}: {worst.what} would need about {fmt(worst.bytes)} of "
                f"memory{whole}, more than the {fmt(available)} {where} (to try anyway, "
                f"set {ENV}=off)")
    return None


def check_run(spec: dict, source: str | None = None) -> None:
    """Refuse (MemoryLimitError) a resolved spec whose run would not fit in memory."""
    if not enabled():
        return
    needs = run_needs(spec)
    device = None
    if any(n.device for n in needs):
        device = device_available("cuda")
    if (problem := refusal(needs, host_available(), device)) is not None:
        raise MemoryLimitError([problem], source)


def check_generation(model, vocab_size: int, prompts: list, num_samples: int,
                     max_new_tokens: int, strategy) -> None:
    """Refuse (MemoryLimitError) a generation call that would not fit in memory.
    Arguments are named as the Python API names them (num_samples=...)."""
    if not enabled():
        return
    try:
        device = next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        device = None
    on_device = getattr(device, "type", None) == "cuda"
    width = getattr(strategy, "width", None) if getattr(strategy, "search", None) else None
    width = width if isinstance(width, int) else None
    need = generation_need(prompts, num_samples, max_new_tokens,
                           [width] if width is not None else [], shape_of(model, vocab_size),
                           on_device, {"num_samples": f"num_samples={num_samples}",
                                       "max_new_tokens": f"max_new_tokens={max_new_tokens}",
                                       "width": f"width={width}"})
    problem = refusal([need], host_available(), device_available(device) if on_device else None)
    if problem is not None:
        raise MemoryLimitError([problem])
