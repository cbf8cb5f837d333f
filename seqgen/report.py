"""The report of a comparison, read from its run directories alone, so rebuilding it
never trains:

    report.md / report.csv   one row per variant: the fields it sets, parameters, steps,
                             how training stopped, final and best validation perplexity,
                             training tokens per second and seconds, a greedy sample
    curves.png               validation perplexity of every variant, overlaid
    decoding.md              every variant's generate.strategies on every prompt, side by
                             side, each sample with its perplexity under the model

Numbers come from the last checkpoint's training progress. Seconds are the trainer's
clock summed over resumes (evaluation included; data loading and sampling not), so tok/s
and seconds are only as steady as the machine. Samples come from the best checkpoint
(else the last) with the spec's seed: the same text every time the report is built.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import checkpoint as ckpt
from .atomic import write_text
from .plot import plot_valid_perplexity

if TYPE_CHECKING:
    from .api import Session
    from .loaded import LoadedModel

# (CSV key, Markdown header, Markdown format; None: as code); varied fields follow "variant"
COLUMNS = [("parameters", "params", "{:,}"), ("steps", "steps", "{}"),
           ("stopped", "stopped", "{}"), ("valid_ppl_final", "valid ppl (final)", "{:.2f}"),
           ("valid_ppl_best", "valid ppl (best)", "{:.2f}"),
           ("tokens_per_second", "tok/s", "{:,.0f}"), ("train_seconds", "train s", "{:.1f}"),
           ("sample_distinct_2", "sample d-2", "{:.2f}"), ("sample", "greedy sample", None)]


@dataclass
class Report:
    """The report `seqgen compare` writes (CompareResult.report).

    rows: one dict per variant, keyed like report.csv's header. table: the Markdown
    table. markdown, csv: the paths of report.md and report.csv. curves: curves.png's
    path, None when no variant has evaluated yet. decoding: decoding.md's path."""
    rows: list[dict]          # one per variant, keyed like report.csv's header
    table: str                # the Markdown table
    markdown: Path
    csv: Path
    curves: Path | None       # None when no variant has evaluated yet
    decoding: Path


def write_report(session: "Session", out: Path, manifest: dict) -> Report:
    fields, rows, sections = manifest["fields"], [], []
    for entry in manifest["variants"]:
        row = {"variant": entry["name"], **{f: entry["set"].get(f) for f in fields}}
        run_dir = out / entry["name"]
        if (run_dir / ckpt.LAST_FILE).is_file():
            model = session.load(run_dir)
            row.update(summary(run_dir, model, manifest["sample_tokens"]))
            sections.append(decoding_section(entry["name"], model, prompts_of(run_dir, model)))
        else:
            row["stopped"] = "not started"
        rows.append({key: row.get(key) for key in ["variant", *fields, *(c[0] for c in COLUMNS)]})
    table = markdown_table(rows, fields)
    name = manifest["name"]
    write_text(out / "report.md", f"# Comparison: {name}\n\n{table}\n\n{NOTES}\n")
    write_text(out / "report.csv", csv_text(rows))
    write_text(out / "decoding.md", f"# Decoding: {name}\n\n{DECODING_NOTES}\n\n"
               + "\n".join(sections))
    evaluated = [out / r["variant"] for r in rows if r["valid_ppl_best"] is not None]
    curves = plot_valid_perplexity(evaluated, out / "curves.png") if evaluated else None
    return Report(rows, table, out / "report.md", out / "report.csv", curves, out / "decoding.md")


NOTES = ("valid ppl: validation perplexity at the last evaluation, and the best one (the "
         "checkpoint samples come from). tok/s and train s: training tokens per second and "
         "seconds on the trainer's clock, evaluation included; only as steady as the "
         "machine. sample d-2: distinct-2 of the greedy sample (near 0: it loops). Curves: "
         "curves.png. Decoding strategies side by side: decoding.md.")
DECODING_NOTES = ("Each variant's generate.strategies on each prompt, from its best "
                  "checkpoint with the spec's seed. ppl is the sample's perplexity under the "
                  "model, exp(-mean log p) over its generated tokens: how typical the text is "
                  "for the model. Lower is not better: greedy text usually scores lowest, and "
                  "repeats itself. d-1 and d-2 (distinct-1, distinct-2): the share of the "
                  "sample's tokens and token pairs that are distinct; text that loops scores "
                  "near 0.")


def prompts_of(run_dir: Path, model: "LoadedModel") -> list[str]:
    """What a run's samples continue: its spec's prompts; for a seq2seq run given none,
    the sources it translated (the runner picks them from its data: samples.json)."""
    from .runner import SAMPLES_FILE
    prompts = model.spec["generate"]["prompts"] or [""]
    if model.generator.task != "seq2seq" or prompts != [""]:
        return prompts
    saved = run_dir / SAMPLES_FILE
    found = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else []
    return list(dict.fromkeys(s["prompt"] for s in found)) or prompts


def summary(run_dir: Path, model: "LoadedModel", sample_tokens: int) -> dict:
    progress = ckpt.load(run_dir / ckpt.LAST_FILE).state["trainer"]["progress"]
    valid = [h["valid_perplexity"] for h in progress["history"] if h["event"] == "eval"]
    gen = model.spec["generate"]
    prompt = prompts_of(run_dir, model)[0]
    sample = model.generate(prompt, "greedy", sample_tokens, 1, model.spec["seed"],
                            gen["on_unknown"])[0]
    shown = (f"{prompt} -> {sample.text}" if model.generator.task == "seq2seq"
             else prompt + sample.text)
    return {"parameters": model.model.num_parameters(), "steps": progress["step"],
            "stopped": progress["stopped"] or "incomplete",
            "valid_ppl_final": valid[-1] if valid else None,
            "valid_ppl_best": min(valid) if valid else None,
            "tokens_per_second": progress["tokens"] / progress["seconds"]
            if progress["seconds"] else None,
            "train_seconds": progress["seconds"], "sample_distinct_2": sample.distinct_2,
            "sample": shown}


def decoding_section(name: str, model: "LoadedModel", prompts: list[str]) -> str:
    spec, gen = model.spec, model.spec["generate"]
    lines = [f"## {name}", "", "| prompt | strategy | ppl | d-1 | d-2 | sample |",
             "| --- | --- | --- | --- | --- | --- |"]
    for options in gen["strategies"]:
        for s in model.generate(prompts, options, gen["max_new_tokens"],
                                gen["num_samples"], spec["seed"], gen["on_unknown"]):
            ppl = (math.exp(-sum(s.logprobs) / len(s.logprobs)) if s.logprobs else None)
            d1, d2 = (("-" if d is None else f"{d:.2f}") for d in (s.distinct_1, s.distinct_2))
            lines.append(f"| {code(s.prompt)} | {cell(s.strategy)} | "
                         f"{'-' if ppl is None else f'{ppl:.2f}'} | {d1} | {d2} | {code(s.text)} |")
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[dict], fields: list[str]) -> str:
    formats = {key: fmt for key, _, fmt in COLUMNS}
    header = ["variant", *fields, *(h for _, h, _ in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        shown = ["-" if v is None else cell(text(v)) if k not in formats else
                 code(v) if formats[k] is None else cell(formats[k].format(v))
                 for k, v in row.items()]
        lines.append("| " + " | ".join(shown) + " |")
    return "\n".join(lines)


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else text(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def text(value: Any) -> str:
    """A field value as written in a cell: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def cell(value: str) -> str:
    """One Markdown table cell: a newline would end the row and a bar the cell."""
    return value.replace("|", "\\|").replace("\n", "↵")


def code(value: str) -> str:
    """Generated text as code, so its spaces show (unless it holds a backtick itself)."""
    return f"`{cell(value)}`" if value and "`" not in value else cell(value)
