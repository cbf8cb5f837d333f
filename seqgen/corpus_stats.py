"""What a dataset holds, before any training: `seqgen data SPEC` and `Session.data_stats`.

    size          tokens in the train and valid splits (and sequences for line and
                  pair datasets), characters read where the dataset says
    vocabulary    its size, and how many of its tokens never occur in the data
    frequent      the most and least frequent tokens, with counts
    coverage      the share of all tokens that the top-N most frequent tokens make up
                  (N = 10, 100, 1000, up to the vocabulary's size): how much of the text
                  a small vocabulary would keep
    lengths       for sequence datasets (lines, pairs): min, quartiles, mean and max of
                  the sequence lengths in tokens

Counts cover both splits. Every number is computed from the dataset the spec builds, so
they are what training will see (after lowercase, newlines, min_freq, ...).
"""
from __future__ import annotations

import statistics

import torch

from .data import Dataset, PairSet, SequenceSet, TokenStream

COVERAGE_AT = (10, 100, 1000)


def _ids(split) -> list[torch.Tensor]:
    if split is None:
        return []
    if isinstance(split, TokenStream):
        return [split.ids]
    if isinstance(split, SequenceSet):
        return list(split.inputs)
    if isinstance(split, PairSet):              # seq2seq: the targets, in `vocab`
        return list(split.targets)
    return []


def _lengths(pieces: list[torch.Tensor]) -> dict:
    lengths = sorted(int(t.numel()) for t in pieces)
    q1, median, q3 = statistics.quantiles(lengths, n=4) if len(lengths) > 1 else lengths * 3
    return {"sequences": len(lengths), "min": lengths[0], "q1": q1, "median": median,
            "q3": q3, "max": lengths[-1], "mean": round(statistics.fmean(lengths), 2)}


def _shown(token: str) -> str:
    return token.encode("unicode_escape").decode("ascii") if len(token) == 1 else token


def corpus_stats(dataset: Dataset, top: int = 10) -> dict:
    """The statistics above, JSON-able."""
    vocab, V = dataset.vocab, len(dataset.vocab)
    counts = torch.zeros(V, dtype=torch.long)
    pieces = _ids(dataset.train) + _ids(dataset.valid)
    for ids in pieces:
        counts += torch.bincount(ids.long(), minlength=V)[:V]
    total = int(counts.sum())
    order = torch.argsort(counts, descending=True, stable=True).tolist()
    seen = [i for i in order if counts[i] > 0]

    def listed(indices):
        return [{"token": _shown(vocab.tokens[i]), "count": int(counts[i])} for i in indices]

    stats = {
        "source": dataset.source, "task": dataset.task,
        "tokens": {"train": sum(int(t.numel()) for t in _ids(dataset.train)),
                   "valid": sum(int(t.numel()) for t in _ids(dataset.valid)), "total": total},
        "vocabulary": {"size": V, "level": vocab.level, "unused": V - len(seen)},
        "most_frequent": listed(seen[:top]),
        "least_frequent": listed(list(reversed(seen[-top:]))),
        "coverage": {str(n): round(float(counts[order[:n]].sum()) / max(total, 1), 4)
                     for n in COVERAGE_AT if n < V} | {str(V): 1.0 if total else 0.0},
    }
    if "characters" in dataset.info:
        stats["characters"] = dataset.info["characters"]
    if isinstance(dataset.train, (SequenceSet, PairSet)):
        stats["lengths"] = _lengths(pieces)
    if isinstance(dataset.train, PairSet):      # the sources' side of the pairs
        sources = [t for split in (dataset.train, dataset.valid) if split is not None
                   for t in split.sources]
        stats["sources"] = {"vocabulary": len(dataset.input_vocab),
                            "shared_vocabulary": dataset.source_vocab is None,
                            "lengths": _lengths(sources)}
    return stats


def describe(stats: dict) -> str:
    """The statistics as a few lines for people."""
    t, v = stats["tokens"], stats["vocabulary"]
    lines = [f"{stats['source']} (task {stats['task']}): {t['total']} {v['level']} tokens "
             f"({t['train']} train, {t['valid']} valid)"
             + (f", {stats['characters']} characters" if "characters" in stats else ""),
             f"vocabulary: {v['size']} tokens ({v['unused']} never occur)",
             "most frequent:  " + ", ".join(f"'{e['token']}' {e['count']}"
                                            for e in stats["most_frequent"]),
             "least frequent: " + ", ".join(f"'{e['token']}' {e['count']}"
                                            for e in stats["least_frequent"]),
             "coverage: " + ", ".join(f"top {n}: {share:.1%}"
                                      for n, share in stats["coverage"].items())]
    if "lengths" in stats:
        n = stats["lengths"]
        lines.append(f"lengths ({n['sequences']} sequences{', targets' if 'sources' in stats else ''}"
                     f"): min {n['min']}, q1 {n['q1']:g}, median {n['median']:g}, q3 "
                     f"{n['q3']:g}, max {n['max']}, mean {n['mean']}")
    if "sources" in stats:
        n = stats["sources"]["lengths"]
        lines.append(f"sources: vocabulary {stats['sources']['vocabulary']} tokens"
                     f"{' (shared)' if stats['sources']['shared_vocabulary'] else ''}; lengths "
                     f"min {n['min']}, median {n['median']:g}, max {n['max']}, mean {n['mean']}")
    return "\n".join(lines)
