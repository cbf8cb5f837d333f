"""`seqgen generate` for encoder-decoder models: translate --source texts or a
--source-file, the way OpenNMT's translate does (-src, -n_best, -batch_size).

    seqgen generate runs/fra --source "go ." --source "i lost ."
        go . -> va !
        i lost . -> j'ai perdu .
    seqgen generate runs/fra --source-file test.en --n-best 3 --strategy beam --set width=5
        one translation per line, n_best lines per source, in source order
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .errors import DataError, GenerationError
from .text_io import read_text

if TYPE_CHECKING:
    from .loaded import LoadedModel
    from .strategy import Strategy


def translate(model: "LoadedModel", strategy: "Strategy", sources: list[str],
              source_file: str | None, n_best: int, max_new_tokens: int | None, seed: int,
              on_unknown: str, stops: tuple[str, ...], batch_size: int,
              attention_plot: str | None, as_json: bool) -> None:
    if model.generator.task != "seq2seq":
        raise GenerationError(f"--source, --source-file and --attention-plot need an "
                              f"encoder-decoder model; this one is a {model.generator.task!r} "
                              f"model: use --prompt")
    if bool(sources) == bool(source_file):
        raise click.UsageError("give the sources to translate: --source TEXT (repeatable) "
                               "or --source-file FILE, not both")
    if source_file:
        sources = read_sources(model, source_file, on_unknown)
    found = []
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        for start in range(0, len(sources), batch_size):
            found += model.translate(sources[start:start + batch_size], strategy,
                                     max_new_tokens, n_best, seed, on_unknown, stop=list(stops),
                                     attention=attention_plot is not None)
    for note in dict.fromkeys(str(n.message) for n in notes):   # once per batch: once
        click.echo(f"warning: {note}", err=True)
    if attention_plot:
        write_plots(found, Path(attention_plot))
    if as_json:
        click.echo(json.dumps([t.to_dict() for t in found], ensure_ascii=False, indent=2))
        return
    for t in found:
        click.echo(t.text if source_file else f"{t.prompt} -> {t.text}")
        if strategy.search is not None and t.perplexity is not None and not source_file:
            click.echo(f"[score {t.score:.4f}, perplexity {t.perplexity:.3f}]")


def read_sources(model: "LoadedModel", path: str, on_unknown: str) -> list[str]:
    """The file's lines, each checked against the source vocabulary: a problem names the
    file and line (an empty line has nothing to encode)."""
    lines = read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()                          # the newline that ends the last line
    if not lines:
        raise DataError(f"{path}: no sources (the file is empty)")
    problems = model.generator.prompt_problems(lines, on_unknown)
    if problems:
        shown = [f"{path}:{i + 1}: {p}" for i, p in problems if i is not None][:5]
        more = len(problems) - len(shown)
        raise DataError("\n".join(shown) + (f"\n(and {more} more)" if more > 0 else ""))
    return lines


def write_plots(found, path: Path) -> None:
    from .attention_plot import write_attention_heatmap
    for i, t in enumerate(found, 1):
        if not t.attention:                    # no token generated (max_new_tokens 0)
            continue
        target = path if len(found) == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")
        write_attention_heatmap(target, t.attention, t.source_tokens, t.target_tokens,
                                title=f"{t.prompt} -> {t.text}")
        click.echo(f"attention: {target}", err=True)
