"""Text to search terms for keyword retrieval: case folding, word split, stopwords, stems.

The same :class:`Tokenizer` must read the chunks and the queries, so its settings are
saved with a keyword index (:meth:`Tokenizer.fingerprint`) and a change re-tokenizes.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable
from typing import Any

from ragkit.analysis import STOPWORDS
from ragkit.errors import ConfigurationError

__all__ = ["ENGLISH_STOPWORDS", "LUCENE_STOPWORDS", "Tokenizer"]

#: The common English function words (the NLTK list, less contractions); the default.
ENGLISH_STOPWORDS: frozenset[str] = STOPWORDS
#: Lucene's 33-word English list (``EnglishAnalyzer``), for a lighter touch.
LUCENE_STOPWORDS: frozenset[str] = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
     "is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then",
     "there", "these", "they", "this", "to", "was", "will", "with"]
)  # fmt: skip

# A word is a run of letters and digits in any script; everything else (punctuation,
# whitespace, underscores, symbols) separates words, so "IL-6" gives "il" and "6".
_WORD = re.compile(r"[^\W_]+")


class Tokenizer:
    """Splits text into lower-case, stemmed search terms without stopwords.

    Example:
        >>> Tokenizer().tokenize("The cells were Running, e.g. in vitro!")
        ['cell', 'run', 'e', 'g', 'vitro']
        >>> Tokenizer(stemmer=None).tokenize("Cells RUNNING")
        ['cells', 'running']

    Args:
        stemmer: a Snowball algorithm name from PyStemmer (``"english"``, ``"german"``,
            ``"porter"``, ...), or ``None`` to keep words as they are.
        stopwords: words dropped before stemming, compared in lower case.
        min_length: drop terms shorter than this many characters.
    """

    def __init__(
        self,
        *,
        stemmer: str | None = "english",
        stopwords: Iterable[str] = ENGLISH_STOPWORDS,
        min_length: int = 1,
    ) -> None:
        if min_length < 1:
            raise ConfigurationError(f"min_length must be 1 or more, got {min_length}")
        self.stemmer = stemmer
        self.stopwords = frozenset(w.casefold() for w in stopwords)
        self.min_length = min_length
        self._local = threading.local()  # PyStemmer objects are not thread-safe
        if stemmer is not None:
            import Stemmer

            if stemmer not in Stemmer.algorithms():
                raise ConfigurationError(
                    f"unknown stemmer {stemmer!r}; use None or one of "
                    f"{', '.join(Stemmer.algorithms())}"
                )

    def _stem_words(self, words: list[str]) -> list[str]:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            import Stemmer

            stemmer = self._local.stemmer = Stemmer.Stemmer(self.stemmer)
        stems: list[str] = stemmer.stemWords(words)
        return stems

    def tokenize(self, text: str) -> list[str]:
        """The terms of ``text`` in order, repeats kept (term frequency counts them)."""
        words = [
            w
            for w in _WORD.findall(text.casefold())
            if w not in self.stopwords and len(w) >= self.min_length
        ]
        if self.stemmer is None or not words:
            return words
        return [s for s in self._stem_words(words) if s]

    def fingerprint(self) -> dict[str, Any]:
        """The settings that decide the terms; two tokenizers agree when these are equal."""
        listed = json.dumps(sorted(self.stopwords)).encode("utf-8", "surrogatepass")
        return {
            "stemmer": self.stemmer,
            "stopwords_sha256": hashlib.sha256(listed).hexdigest(),
            "min_length": self.min_length,
            "pattern": _WORD.pattern,
        }

    def __repr__(self) -> str:
        return (
            f"Tokenizer(stemmer={self.stemmer!r}, stopwords=<{len(self.stopwords)} words>, "
            f"min_length={self.min_length})"
        )
