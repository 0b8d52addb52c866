"""Stop a generation that has started copying itself.

Small models decoding greedily fall into loops: the same sentence, or the whole answer,
written again and again until ``max_tokens`` runs out (SmolLM2-135M does this on about
one SQuAD question in ten). :class:`RepeatGuard` watches the text as it is generated
and says when its last ``window`` characters already appeared, whole, earlier in the
answer; :meth:`RepeatGuard.cut` then removes the copy.
"""

from __future__ import annotations

import re

__all__ = ["RepeatGuard"]

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


class RepeatGuard:
    """Detects a verbatim self-repeat at the end of a growing text.

    Example:
        >>> guard = RepeatGuard(window=12)
        >>> text = "It is blue. It is red. It is blue. It is red."
        >>> guard.repeats(text)
        True
        >>> guard.cut(text)
        'It is blue. It is red.'

    Args:
        window: characters at the end of the text that must already have occurred,
            earlier and without overlap, for the text to count as repeating; 0 turns
            the guard off. Runs of punctuation (``-----``, a Markdown rule) do not
            count: at least half of the window must be letters or digits.
    """

    def __init__(self, window: int = 48) -> None:
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        self.window = window

    def _earlier(self, text: str) -> int:
        """Start of the latest earlier occurrence of the text's tail, or -1."""
        n = self.window
        if n == 0 or len(text) < 2 * n:
            return -1
        tail = text[-n:]
        if sum(ch.isalnum() for ch in tail) < n // 2:
            return -1
        return text.rfind(tail, 0, len(text) - n)

    def repeats(self, text: str) -> bool:
        """True when the end of ``text`` copies an earlier part of it."""
        return self._earlier(text) >= 0

    def cut(self, text: str) -> str:
        """``text`` without the copy at its end (unchanged when it does not repeat).

        The copy is followed back to where it began, so a repeated sentence is removed
        whole, not only its last ``window`` characters. When the copy began inside a
        sentence, that sentence is kept to its end (it is written out in full there),
        or, if it never ends, dropped (when an earlier sentence is left).
        """
        earlier = self._earlier(text)
        if earlier < 0:
            return text
        shift = len(text) - self.window - earlier  # distance between copy and original
        start = len(text) - self.window
        while start > shift and text[start - 1] == text[start - 1 - shift]:
            start -= 1
        kept = text[:start].rstrip()
        ends = [m.end() for m in _SENTENCE_END.finditer(kept)]
        if ends and ends[-1] == len(kept):
            return kept
        following = _SENTENCE_END.search(text, start)
        if following is not None:
            return text[: following.end()].rstrip()
        return kept[: ends[-1]].rstrip() if ends else kept
