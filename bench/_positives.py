"""Training pairs from labelled (query, document) pairs of a benchmark: the positive is
the document's chunk in the kb that the kb's embedder ranks highest for the query."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragkit.training.negatives import embed_queries
from ragkit.training.pairs import Pair, kb_chunks


def best_chunk_pairs(rag: Any, wanted: Sequence[tuple[str, str]]) -> list[Pair]:
    """A :class:`Pair` for each (query, document id) of ``wanted``, in order, whose
    document has chunks in the kb ``rag``; each query is embedded once."""
    by_doc: dict[str, list[Any]] = defaultdict(list)
    for chunk in kb_chunks(rag):
        by_doc[chunk.document_id].append(chunk)
    queries = list(dict.fromkeys(query for query, _ in wanted))
    vectors = dict(zip(queries, embed_queries(rag.embedder, queries), strict=True))
    pairs = []
    for query, doc_id in wanted:
        chunks = by_doc.get(doc_id)
        if not chunks:
            continue
        scores = rag.embedder.embed_documents([c.text for c in chunks]) @ vectors[query]
        pairs.append(Pair(query, chunks[int(np.argmax(scores))].text, document_id=doc_id))
    return pairs
