"""Check every claim of an answer against the passages it cites.

Markers that a model writes are never trusted on their own. Each sentence of the answer
is compared with every sentence of the retrieved chunks, by embedding similarity plus
word overlap (RAGFlow's ``insert_citations`` weights: 0.9 vector, 0.1 token), and the
supporting sentence must also contain the claim's own facts: the content words it adds
to the question. A marker whose passage does not support its sentence is dropped, or
re-pointed to the passage that does; a sentence that no passage supports is flagged in
``Answer.unsupported``. Every citation then quotes the supporting sentences with their
exact character span.

:mod:`~ragkit.verification.claims` splits an answer into claims and writes it back;
:mod:`~ragkit.verification.verifier` scores the claims against the passages.
"""

from ragkit.verification.claims import Claim, split_claims
from ragkit.verification.verifier import CitationVerifier, VectorMemo

__all__ = ["CitationVerifier", "Claim", "VectorMemo", "split_claims"]
