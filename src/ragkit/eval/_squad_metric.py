"""The official SQuAD answer metric (evaluate-v1.1.py / evaluate-v2.0.py), and the
answer text it is computed on; see :mod:`ragkit.eval.squad`."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

from ragkit.types import Answer

__all__ = ["answer_text", "contains_answer", "exact_match", "f1_score", "normalize_answer"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)
_MARKERS = re.compile(r"\s*\[\d+\]")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace.

    The normalization of the official SQuAD evaluation script, step for step.

    Example:
        >>> normalize_answer("The  Denver Broncos!")
        'denver broncos'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _exact(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def _f1(prediction: str, truth: str) -> float:
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(truth).split()
    common = Counter(predicted) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    """1.0 when the normalized prediction equals a normalized gold answer, else 0.0.

    Example:
        >>> exact_match("the Broncos.", ["Broncos", "Denver Broncos"])
        1.0
    """
    return max((_exact(prediction, a) for a in answers), default=0.0)


def f1_score(prediction: str, answers: Iterable[str]) -> float:
    """The best token F1 of the normalized prediction against any gold answer.

    Example:
        >>> round(f1_score("Denver", ["Denver Broncos"]), 4)
        0.6667
    """
    return max((_f1(prediction, a) for a in answers), default=0.0)


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """True when a normalized gold answer occurs in the normalized ``text``.

    Matching is on whole words: ``"1"`` is not found in ``"10 years"``.

    Example:
        >>> contains_answer("The game was won by the Denver Broncos [1].", ["Denver Broncos"])
        True
    """
    haystack = f" {normalize_answer(text)} "
    return any((needle := normalize_answer(a)) and f" {needle} " in haystack for a in answers)


def answer_text(answer: Answer) -> str:
    """The answer's text without its ``[n]`` markers (what EM and F1 are computed on)."""
    return _MARKERS.sub("", answer.text).strip()
