"""Scoring a seq2seq model on held-out pairs, the way translation is scored.

    token accuracy   teacher-forced: the share of real target positions (<eos>
                     included) whose most likely token is the reference's
    exact match      decoded with the spec's strategy: the share of sources whose
                     translation is the reference, token for token
    BLEU             corpus BLEU of those translations by sacrebleu (0..100; its "char"
                     tokenisation for character-level data), when sacrebleu is installed
    BLEU (d2l)       word-level data: the book's sentence BLEU (k=2), averaged (0..1),
                     to compare with d2l's printed values

Decoding uses the same generator, strategies and batching as `seqgen generate`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .bleu import bleu_available, corpus_bleu, sentence_bleu
from .data import PairSet
from .evaluate import batch_logits, pair_batches
from .generate import TextGenerator
from .strategy import Strategy

# A translation may run a little past the longest reference before it is cut off.
SLACK_TOKENS = 5


@dataclass
class TranslationScorer:
    """Scores `generator`'s model on `split` (called at every evaluation of a seq2seq run).

    max_examples: how many pairs (the first ones) are decoded; 0 decodes none.
    max_new_tokens: the longest translation (None: the longest reference + SLACK_TOKENS).
    """
    generator: TextGenerator
    split: PairSet
    strategy: Strategy
    device: torch.device
    max_examples: int = 500
    max_new_tokens: int | None = None
    seed: int = 0

    def __call__(self) -> dict:
        model = self.generator.model
        was_training = model.training
        model.eval()
        try:
            metrics = {"valid_token_accuracy": self.token_accuracy()}
            if self.max_examples:
                metrics.update(self.decoded())
            return metrics
        finally:
            model.train(was_training)

    @torch.no_grad()
    def token_accuracy(self) -> float:
        right = total = 0
        for batch in pair_batches(self.split, 64):
            batch = batch.to(self.device)
            best = batch_logits(self.generator.model, batch).argmax(-1)      # [T, B]
            hits = (best == batch.targets) & batch.mask
            right, total = right + int(hits.sum()), total + batch.num_tokens
        return right / max(total, 1)

    def decoded(self) -> dict:
        count = min(self.max_examples, len(self.split))
        source_vocab, vocab = self.generator.input_vocab, self.generator.vocab
        # as text, specials kept (a word-level <unk> reads back as itself)
        sources = [source_vocab.decode(self.split.sources[i].tolist(), skip_specials=False)
                   for i in range(count)]
        references = [vocab.decode(self.split.targets[i].tolist()) for i in range(count)]
        longest = max(len(self.split.targets[i]) for i in range(count))
        samples = self.generator.generate(sources, self.strategy,
                                          self.max_new_tokens or longest + SLACK_TOKENS,
                                          1, self.seed, on_unknown="skip")
        hypotheses = [s.text for s in samples]
        metrics = {"valid_exact_match": sum(h == r for h, r in zip(hypotheses, references))
                   / count}
        if bleu_available():
            metrics["valid_bleu"] = corpus_bleu(hypotheses, references,
                                                tokenize="char" if vocab.level == "char" else "13a")
        if vocab.level == "word":
            metrics["valid_bleu_d2l"] = sum(sentence_bleu(h, r, 2) for h, r in
                                            zip(hypotheses, references)) / count
        return metrics
