"""Light text analysis shared by the extractive generator and citation checks.

Offsets are kept everywhere: sentences come back as ``(start, end)`` spans of the text
they were found in.
"""

from __future__ import annotations

import re

__all__ = [
    "STOPWORDS",
    "code_spans",
    "content_terms",
    "prose_ratio",
    "split_sentences",
    "stem",
]

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)([^\n]*)", re.MULTILINE)
# A sentence ends at . ! ? (plus closing quotes/brackets) followed by whitespace, or at a
# blank line or a line break that starts a list item, a heading or a table row (a line
# holding " | ", as loaders/tables.py writes rows and Markdown tables look): each row is
# quoted and cited on its own.
_BOUNDARY = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)]|#)\s)|\n(?=[^\n]* \| )"
)
_ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "etc",
        "vs",
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "fig",
        "eq",
        "no",
        "al",
        "approx",
        "cf",
        "st",
    ]
)


def stem(word: str) -> str:
    """A deliberately small suffix stripper (plural and common verb endings)."""
    for suffix, min_len in (("ies", 5), ("ing", 6), ("ed", 5), ("es", 5), ("s", 4)):
        if word.endswith(suffix) and len(word) >= min_len:
            if suffix == "ies":
                return word[:-3] + "y"
            if suffix == "s" and word.endswith("ss"):
                return word
            return word[: -len(suffix)]
    return word


def content_terms(text: str) -> list[str]:
    """Lower-cased, stemmed words of ``text`` without stopwords.

    Identifiers are split too: ``TimeoutException`` gives ``timeoutexception``,
    ``timeout`` and ``exception``.
    """
    terms = []
    for word in _WORD.findall(text):
        lower = word.lower()
        if lower not in STOPWORDS:
            terms.append(stem(lower))
        parts = _CAMEL.findall(word)
        if len(parts) > 1:
            terms += [stem(p.lower()) for p in parts if p.lower() not in STOPWORDS]
    return terms


def code_spans(text: str) -> list[tuple[int, int]]:
    """Spans of fenced code blocks (Markdown ``` or ~~~) in ``text``.

    ``text`` may be a chunk cut from the middle of a document. A fence opened and not
    closed within ``text`` runs to its end; a first fence that looks like a closing one
    (no info string, and code-like text before it) closes a block open since the start.
    """
    spans = []
    opened: int | None = None
    fences = list(_FENCE.finditer(text))
    if fences and not fences[0].group(1).strip():
        before = text[: fences[0].start()]
        next_has_info = len(fences) > 1 and bool(fences[1].group(1).strip())
        if before.strip() and (next_has_info or len(fences) % 2 == 1 or prose_ratio(before) < 0.8):
            spans.append((0, fences[0].end()))
            fences = fences[1:]
    for match in fences:
        if opened is None:
            opened = match.start()
        else:
            line_end = text.find("\n", match.end())
            spans.append((opened, len(text) if line_end < 0 else line_end))
            opened = None
    if opened is not None:
        spans.append((opened, len(text)))
    return spans


def prose_ratio(text: str) -> float:
    """Share of letters and spaces in ``text``: near 1 for prose, lower for code."""
    if not text:
        return 0.0
    return sum(1 for ch in text if ch.isalpha() or ch == " ") / len(text)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences in ``text``, whitespace trimmed, in order."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        before = text[start : match.start()]
        last_word = before.rsplit(None, 1)[-1].rstrip(".").lower() if before.split() else ""
        if text[match.start() - 1 : match.start()] == "." and (
            last_word in _ABBREVIATIONS or len(last_word) == 1
        ):
            continue  # "e.g. the" or "J. Smith": not a sentence end
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for raw_start, raw_end in spans:
        s, e = raw_start, raw_end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out
