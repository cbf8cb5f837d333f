"""BLEU for translation models: one sentence the way the d2l book scores it, and a whole
test set the way papers report it.

`sentence_bleu(pred, label, k)` is `bleu(pred_seq, label_seq, k)` from "Dive into Deep
Learning", section 10.7 (sec_seq2seq_training): tokens are what splitting on single
spaces gives; the score is the brevity penalty exp(min(0, 1 - len_label / len_pred))
times, for n = 1 .. min(k, len_pred), the n-gram precision p_n raised to 1 / 2**n, where
a predicted n-gram matches at most as often as it occurs in the label (clipped counts).
It is in 0..1 and is the number the book prints under its translations ("he's calm . =>
il est riche ., bleu 0.658"). It is meant for looking at single examples, not for
reporting a model's quality: it knows one reference only, tokenises on spaces only, and
its geometric mean is weighted towards short n-grams.

`corpus_bleu(hypotheses, references)` is sacrebleu's corpus BLEU (0..100), the field's
reference implementation: it tokenises raw detokenised text itself (the standard
"13a" tokeniser unless told otherwise), counts n-gram matches up to 4-grams and the
brevity penalty over the whole corpus rather than averaging per-sentence scores, and so
gives numbers comparable with published ones and with other toolkits. sacrebleu is an
optional dependency (`pip install 'seqgen[bleu]'`); `bleu_available()` says whether it
can be imported.
"""
from __future__ import annotations

import collections
import math
from collections.abc import Sequence

from .errors import SeqgenError

INSTALL_HINT = "pip install 'seqgen[bleu]'"


def sentence_bleu(pred: str, label: str, k: int = 2) -> float:
    """d2l's BLEU of one predicted sentence against one label sentence (0..1).

    Exactly d2l's `bleu` (section 10.7), including its quirks: tokens are
    `str.split(' ')`, so two spaces in a row make an empty token; and only the n-gram
    orders up to min(k, len_pred) are counted, so a one-token prediction is scored on
    unigrams alone (d2l's older editions looped to k and divided by zero there).

    The one deviation: an empty prediction scores 0.0. d2l would split "" into one
    empty token and score it like a one-word sentence (1.0 against an empty label).
    """
    if not pred:
        return 0.0
    pred_tokens, label_tokens = pred.split(" "), label.split(" ")
    len_pred, len_label = len(pred_tokens), len(label_tokens)
    score = math.exp(min(0, 1 - len_label / len_pred))
    for n in range(1, min(k, len_pred) + 1):
        num_matches, label_subs = 0, collections.defaultdict(int)
        for i in range(len_label - n + 1):
            label_subs[" ".join(label_tokens[i: i + n])] += 1
        for i in range(len_pred - n + 1):
            gram = " ".join(pred_tokens[i: i + n])
            if label_subs[gram] > 0:
                num_matches += 1
                label_subs[gram] -= 1                  # clipped: each label n-gram once
        score *= math.pow(num_matches / (len_pred - n + 1), math.pow(0.5, n))
    return score


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str],
                tokenize: str = "13a") -> float:
    """sacrebleu's corpus BLEU (0..100) of `hypotheses` against one reference each:
    `sacrebleu.metrics.BLEU(tokenize=tokenize).corpus_score(hypotheses, [references])`.
    Pass detokenised text; sacrebleu tokenises it (`tokenize`: "13a", "intl", "char",
    "none", "zh", ... as sacrebleu knows them).

    Raises SeqgenError when sacrebleu is not installed, ValueError for corpora of
    different lengths (sacrebleu would silently score the shorter prefix), an empty
    corpus, or an unknown tokeniser."""
    for name, value in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(value, str):
            raise TypeError(f"corpus_bleu: {name} must be a list of sentences, not one string")
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"corpus_bleu: {len(hypotheses)} hypotheses but "
                         f"{len(references)} references (one reference per hypothesis)")
    if not hypotheses:
        raise ValueError("corpus_bleu: no sentences to score")
    sacrebleu = _import_sacrebleu()
    known = sacrebleu.metrics.BLEU.TOKENIZERS
    if tokenize not in known:
        raise ValueError(f"corpus_bleu: unknown tokenize {tokenize!r} "
                         f"(sacrebleu knows: {', '.join(known)})")
    bleu = sacrebleu.metrics.BLEU(tokenize=tokenize)
    return float(bleu.corpus_score(hypotheses, [references]).score)


def bleu_available() -> bool:
    """Whether sacrebleu can be imported here (corpus_bleu works)."""
    try:
        _import_sacrebleu()
    except SeqgenError:
        return False
    return True


def _import_sacrebleu():
    try:
        import sacrebleu
    except ImportError as e:
        if e.name == "sacrebleu":
            raise SeqgenError(f"corpus BLEU needs sacrebleu, which is not installed: "
                              f"{INSTALL_HINT}") from None
        raise SeqgenError(f"corpus BLEU needs sacrebleu, which is installed but does not "
                          f"import ({e}); reinstall it: {INSTALL_HINT}") from e
    return sacrebleu
