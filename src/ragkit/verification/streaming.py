"""Streaming an answer without taking anything back: text goes out a verified sentence at
a time.

A generator writes its answer token by token, and verification may still re-point a
sentence's markers or, when no sentence is supported, turn the answer into a refusal.
:class:`VerifiedStream` holds the text back until that cannot happen to it: a sentence
is sent once the next one has begun (its markers are then complete) and the answer so
far, verified as a whole, has at least one supported claim (then it cannot become a
refusal). What it sends is always the start of the verified answer, so the deltas
joined are the final text. Two things are held to the end: a sentence that repeats an
earlier one word for word (a small model looping; the generator's repeat guard may cut
it from the final text) and everything after it; and, with a verifier whose threshold
decays (it accepts weaker support when nothing is supported), the whole answer, since a
later claim can change which threshold applies to the earlier ones.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

from ragkit.types import Answer, CitationEvent, DeltaEvent, Generation, ScoredChunk
from ragkit.verification.claims import split_claims

__all__ = ["VerifiedStream"]

logger = logging.getLogger(__name__)

_LETTER = re.compile(r"[^\W\d_]")

Finish = Callable[[Generation], Answer]


class VerifiedStream:
    """Turns a generator's raw deltas into verified delta and citation events.

    Example:
        >>> stream = VerifiedStream(finish, hits, model="m")  # doctest: +SKIP
        >>> for delta in generator_deltas:  # doctest: +SKIP
        ...     yield from stream.feed(delta)
        >>> events, answer = stream.close(generation)  # doctest: +SKIP

    Args:
        finish: turns a generation into the answer as the chain returns it (markers
            resolved, claims verified).
        contexts: the passages the generator was given, numbered from 1 (a generator
            that drops some to fit its budget drops the last ones, so the numbers of
            the others hold).
        model: the generator's model, for the partial generations.
        hold_all: send nothing before the end (a verifier whose threshold decays).
    """

    def __init__(
        self,
        finish: Finish,
        contexts: Sequence[ScoredChunk],
        *,
        model: str = "",
        hold_all: bool = False,
    ) -> None:
        self._finish = finish
        self._contexts = tuple(contexts)
        self._model = model
        self._hold_all = hold_all
        self._raw = ""
        self._cut = 0  # raw text up to here has been verified
        self._frozen = hold_all  # a repeated sentence: nothing more until the end
        self.sent = ""
        self._cited: set[int] = set()

    def feed(self, delta: str) -> list[DeltaEvent | CitationEvent]:
        """Take more raw text; the events that can be sent now."""
        self._raw += delta
        if self._frozen:
            return []
        cut = self._complete()
        if cut <= self._cut:
            return []
        self._cut = cut
        partial = self._finish(Generation(self._raw[:cut], self._contexts, model=self._model))
        return [] if partial.refused else self._advance(partial)

    def close(self, generation: Generation) -> tuple[list[DeltaEvent | CitationEvent], Answer]:
        """The events left to send and the final answer, from the whole generation."""
        answer = self._finish(generation)
        return self._advance(answer), answer

    def _complete(self) -> int:
        """Where the raw text's complete sentences end (0 when none is complete yet)."""
        claims = split_claims(self._raw)
        if len(claims) < 2 or not _LETTER.search(claims[-1].text):
            return self._cut
        seen: set[str] = set()
        for claim in claims[:-1]:
            key = " ".join(claim.text.lower().split())
            if key in seen:
                self._frozen = True
                logger.debug("a sentence repeats an earlier one; holding the rest")
                return max(self._cut, claim.start)
            seen.add(key)
        return claims[-1].start

    def _advance(self, answer: Answer) -> list[DeltaEvent | CitationEvent]:
        text = answer.text
        if not text.startswith(self.sent):
            logger.warning(
                "the verified answer no longer starts with the text already sent; "
                "holding the rest of it"
            )
            return []
        events: list[DeltaEvent | CitationEvent] = []
        if len(text) > len(self.sent):
            events.append(DeltaEvent(text[len(self.sent) :]))
            self.sent = text
        for citation in answer.citations:
            if citation.marker not in self._cited and f"[{citation.marker}]" in self.sent:
                self._cited.add(citation.marker)
                events.append(CitationEvent(citation))
        return events
