"""seqgen.bleu: d2l's sentence BLEU (the book's printed numbers, worked by hand) and
sacrebleu's corpus BLEU (the same number as sacrebleu itself, a clear error without it)."""
import math
import sys

import pytest

from seqgen.bleu import bleu_available, corpus_bleu, sentence_bleu
from seqgen.errors import SeqgenError

# d2l section 10.7 translates four sentences with its trained model and prints, for k=2:
# go . => va !, bleu 1.000 / i lost . => j'ai perdu ., bleu 1.000 /
# he's calm . => il est riche ., bleu 0.658 / i'm home . => je suis chez moi ., bleu 1.000
BOOK = [("va !", "va !", 1.0), ("j'ai perdu .", "j'ai perdu .", 1.0),
        ("il est riche .", "il est calme .", 0.658),
        ("je suis chez moi .", "je suis chez moi .", 1.0)]


@pytest.mark.parametrize("pred, label, printed", BOOK)
def test_the_books_printed_scores(pred, label, printed):
    assert f"{sentence_bleu(pred, label, 2):.3f}" == f"{printed:.3f}"


def test_one_wrong_word_worked_by_hand():
    # 4 tokens each: no brevity penalty. Unigrams il, est, . match: p1 = 3/4. Bigrams
    # (il est) (est riche) (riche .) against (il est) (est calme) (calme .): p2 = 1/3.
    expected = (3 / 4) ** 0.5 * (1 / 3) ** 0.25
    assert sentence_bleu("il est riche .", "il est calme .", 2) == pytest.approx(expected)
    assert expected == pytest.approx(0.658, abs=5e-4)


def test_identical_sentences_score_one_for_any_k():
    for k in (1, 2, 3, 4):
        assert sentence_bleu("je suis chez moi .", "je suis chez moi .", k) == pytest.approx(1.0)


def test_brevity_penalty():
    # every n-gram of the prediction is in the label, but it is 2 tokens for a label of 5
    assert sentence_bleu("je suis", "je suis chez moi .", 2) == pytest.approx(math.exp(1 - 5 / 2))
    # the book's own example: label A B C D E F, prediction A B, k=2: exp(1 - 6/2) ~ 0.14
    assert sentence_bleu("A B", "A B C D E F", 2) == pytest.approx(math.exp(-2))
    # a prediction longer than the label is not penalised for length
    assert sentence_bleu("a b c", "a b", 1) == pytest.approx((2 / 3) ** 0.5)


def test_matches_are_clipped_to_the_labels_counts():
    # "the" occurs once in the label: of three predicted "the", one matches (p1 = 1/3,
    # not 3/3). len_pred 3 >= len_label 2: no brevity penalty.
    assert sentence_bleu("the the the", "the cat", 1) == pytest.approx((1 / 3) ** 0.5)
    # no bigram "the the" in the label: p2 = 0/2, so the score is 0
    assert sentence_bleu("the the the", "the cat", 2) == 0.0


def test_a_prediction_shorter_than_k_is_scored_on_the_orders_it_has():
    # d2l 10.7 loops n over 1..min(k, len_pred): a 1-token prediction gets p1 only,
    # times the brevity penalty exp(1 - 2/1); no division by zero
    assert sentence_bleu("va", "va !", 2) == pytest.approx(math.exp(-1))
    assert sentence_bleu("go", "va !", 4) == 0.0


def test_an_empty_prediction_scores_zero():
    assert sentence_bleu("", "va !", 2) == 0.0
    assert sentence_bleu("", "", 2) == 0.0


CORPUS_HYPS = ["the cat sat on the mat .", "a dog barked at the moon", "hello world !"]
CORPUS_REFS = ["the cat sat on a mat .", "the dog barked at the moon", "hello , world !"]


def test_corpus_bleu_is_sacrebleus_number():
    sacrebleu = pytest.importorskip("sacrebleu")
    assert bleu_available()
    for tokenize in ("13a", "intl", "char", "none"):
        direct = sacrebleu.metrics.BLEU(tokenize=tokenize).corpus_score(
            CORPUS_HYPS, [CORPUS_REFS]).score
        assert corpus_bleu(CORPUS_HYPS, CORPUS_REFS, tokenize=tokenize) == direct
    assert 0 < corpus_bleu(CORPUS_HYPS, CORPUS_REFS) < 100


def test_identical_corpora_score_100():
    pytest.importorskip("sacrebleu")
    assert corpus_bleu(CORPUS_REFS, CORPUS_REFS) == pytest.approx(100.0)


def test_corpus_bleu_rejects_what_sacrebleu_would_mis_score():
    pytest.importorskip("sacrebleu")
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        corpus_bleu(CORPUS_HYPS[:2], CORPUS_REFS)      # sacrebleu would score a prefix
    with pytest.raises(ValueError, match="no sentences"):
        corpus_bleu([], [])
    with pytest.raises(ValueError, match="unknown tokenize 'nope'.*13a"):
        corpus_bleu(CORPUS_HYPS, CORPUS_REFS, tokenize="nope")
    with pytest.raises(TypeError, match="list of sentences"):
        corpus_bleu("the cat", "the cat")


def test_without_sacrebleu_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)   # `import sacrebleu` raises
    assert not bleu_available()
    with pytest.raises(SeqgenError, match=r"pip install 'seqgen\[bleu\]'") as info:
        corpus_bleu(CORPUS_HYPS, CORPUS_REFS)
    assert "not installed" in str(info.value)
    # sentence BLEU needs nothing optional
    assert sentence_bleu("va !", "va !") == 1.0


def d2l_bleu(pred_seq, label_seq, k):
    """d2l 10.7's `bleu`, verbatim (the reference sentence_bleu must equal)."""
    import collections
    pred_tokens, label_tokens = pred_seq.split(' '), label_seq.split(' ')
    len_pred, len_label = len(pred_tokens), len(label_tokens)
    score = math.exp(min(0, 1 - len_label / len_pred))
    for n in range(1, min(k, len_pred) + 1):
        num_matches, label_subs = 0, collections.defaultdict(int)
        for i in range(len_label - n + 1):
            label_subs[' '.join(label_tokens[i: i + n])] += 1
        for i in range(len_pred - n + 1):
            if label_subs[' '.join(pred_tokens[i: i + n])] > 0:
                num_matches += 1
                label_subs[' '.join(pred_tokens[i: i + n])] -= 1
        score *= math.pow(num_matches / (len_pred - n + 1), math.pow(0.5, n))
    return score


def test_equals_d2l_on_random_sentences():
    import random
    rng = random.Random(0)
    words = ["a", "b", "c", "d", ".", ""]               # "" : d2l's split makes empty tokens
    for _ in range(2000):
        pred = " ".join(rng.choices(words, k=rng.randint(1, 8)))
        label = " ".join(rng.choices(words, k=rng.randint(1, 8)))
        if not pred:
            continue                                    # the documented deviation
        k = rng.randint(1, 4)
        assert sentence_bleu(pred, label, k) == d2l_bleu(pred, label, k), (pred, label, k)
