"""Step 4, evaluate: a held-out split of the pairs by document, and the scores on it.

The split keeps every pair of a document on one side (:func:`split_by_document`): with
pairs of the same document on both sides, a model that memorised the training
passages would look better on the held-out split than it is on new documents.

:class:`HeldOut` turns the held-out pairs into a small retrieval task: its queries,
a pool of passages (their positives and negatives, plus passages of the training
side as distractors) and which passages answer which query. The same task scores
the base model and every checkpoint (nDCG@10), so the best checkpoint and the
promotion decision are made on documents the model never trained on. The decision
reads each query's score (``*_per_query``), so it can ask how sure a gain is.

A reranker is judged on the passages its first stage hands it: :func:`pool_ranker`
ranks the pool as the kb's own retrieval would (hybrid by default), and
:meth:`HeldOut.best_weight` tries mixing the reranker's score with that stage's.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragkit.errors import ConfigurationError
from ragkit.training.pairs import Pair
from ragkit.types import Chunk, ScoredChunk

#: A first stage: ``rank(query, texts)`` -> the (text, score) pairs it would hand a
#: reranker, best first.
Ranker = Callable[[str, list[str]], list[tuple[str, float]]]

#: The mix weights a trained reranker is tried at on the held-out split (see
#: :meth:`HeldOut.best_weight`): 1 is the reranker alone.
WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

__all__ = ["WEIGHTS", "HeldOut", "pool_ranker", "split_by_document"]

#: The held-out measure: nDCG@10 over the pool (the metric the benchmarks report).
METRIC = "ndcg@10"


def split_by_document(
    pairs: Sequence[Pair], *, fraction: float = 0.1, seed: int = 0, min_pairs: int = 1
) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out): whole documents go to the held-out side until it holds about
    ``fraction`` of the pairs (at least ``min_pairs``).

    A query with several relevant documents (a claim two abstracts support) would
    otherwise be trained on with one of them and held out with another: every pair of a
    query that has a pair on the held-out side goes there too, so no held-out query is
    one the model trained on, and each held-out query counts all its known positives as
    relevant (its other positives are not scored as wrong answers).

    Documents are taken in an order fixed by ``seed``, so a split is repeatable; pairs
    keep their order within each side.

    Raises:
        ConfigurationError: ``fraction`` is not in (0, 1), the pairs come from a
            single document, or their queries tie all of them to the held-out side
            (nothing would be left to train on, or to test on).
    """
    if not 0 < fraction < 1:
        raise ConfigurationError(f"fraction must be between 0 and 1, got {fraction}")
    groups: dict[str, int] = {}
    for pair in pairs:
        groups[pair.group] = groups.get(pair.group, 0) + 1
    if len(groups) < 2:
        raise ConfigurationError(
            "the pairs come from a single document: a held-out split by document needs "
            "two or more (add document_id to the pairs, or more documents)"
        )
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}\0{g}".encode()).hexdigest())
    want = max(min_pairs, round(fraction * len(pairs)))
    held: set[str] = set()
    taken = 0
    for group in order:
        if taken >= want or len(held) == len(groups) - 1:
            break
        held.add(group)
        taken += groups[group]
    held_queries = {p.query for p in pairs if p.group in held}
    train = [p for p in pairs if p.group not in held and p.query not in held_queries]
    heldout = [p for p in pairs if p.group in held or p.query in held_queries]
    if not train:
        raise ConfigurationError(
            "every pair shares a query with a held-out pair: nothing is left to train on "
            "(pass eval_pairs=, or pairs with more distinct queries)"
        )
    return train, heldout


@dataclass
class HeldOut:
    """The held-out pairs as a retrieval task: queries, a passage pool, relevance.

    Example:
        >>> task = HeldOut.build(heldout_pairs, distractors=[p.positive for p in train])
        >>> task.score_embedder(model)  # doctest: +SKIP

    Attributes:
        queries: query id -> text.
        corpus: passage id -> text (positives, negatives and distractors).
        relevant: query id -> ids of the passages that answer it.
    """

    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]
    name: str = "heldout"
    _ids: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        pairs: Sequence[Pair],
        *,
        distractors: Sequence[str] = (),
        pool: int = 2000,
        seed: int = 0,
    ) -> HeldOut:
        """The task for ``pairs``; ``distractors`` fill the pool up to ``pool`` passages."""
        if not pairs:
            raise ConfigurationError("no held-out pairs to evaluate on")
        task = cls({}, {}, {})
        by_query: dict[str, str] = {}
        for pair in pairs:
            qid = by_query.setdefault(pair.query, f"q{len(by_query)}")
            task.queries[qid] = pair.query
            task.relevant.setdefault(qid, set()).add(task._passage(pair.positive))
            for negative in pair.negatives:
                task._passage(negative)
        rng = random.Random(seed)
        extra = [t for t in dict.fromkeys(distractors) if t not in task._ids]
        rng.shuffle(extra)
        for text in extra[: max(0, pool - len(task.corpus))]:
            task._passage(text)
        return task

    def _passage(self, text: str) -> str:
        pid = self._ids.get(text)
        if pid is None:
            pid = self._ids[text] = f"d{len(self._ids)}"
            self.corpus[pid] = text
        return pid

    def embedder_evaluator(self) -> Any:
        """A sentence-transformers ``InformationRetrievalEvaluator`` on this task."""
        from sentence_transformers.sentence_transformer.evaluation import (
            InformationRetrievalEvaluator,
        )

        evaluator: Any = InformationRetrievalEvaluator
        return evaluator(
            self.queries,
            self.corpus,
            self.relevant,
            name=self.name,
            show_progress_bar=False,
            write_csv=False,
            ndcg_at_k=[10],
            mrr_at_k=[10],
            accuracy_at_k=[1, 10],
            precision_recall_at_k=[10],
            map_at_k=[10],
        )

    @property
    def embedder_key(self) -> str:
        """The evaluator's result key of the measure (``heldout_cosine_ndcg@10``)."""
        return f"{self.name}_cosine_{METRIC}"

    def score_embedder(self, model: Any) -> float:
        """nDCG@10 of a ``SentenceTransformer`` on the task."""
        return float(self.embedder_evaluator()(model)[self.embedder_key])

    def embedder_per_query(self, model: Any) -> list[float]:
        """Each query's nDCG@10 under a ``SentenceTransformer`` (cosine over the pool),
        in :attr:`queries` order: the figures the promotion decision resamples. Their
        mean is the measure :meth:`score_embedder` reports."""
        options = {"normalize_embeddings": True, "convert_to_numpy": True, "batch_size": 32}
        encode_query = getattr(model, "encode_query", model.encode)
        encode_document = getattr(model, "encode_document", model.encode)
        docs = encode_document(list(self.corpus.values()), **options)
        queries = encode_query(list(self.queries.values()), **options)
        return self._per_query(queries @ docs.T)

    def vectors_per_query(self, embedder: Any) -> list[float]:
        """:meth:`embedder_per_query` for a ragkit :class:`~ragkit.protocols.Embedder`
        (normalized vectors, queries through ``embed_query``), such as a kb's cached
        embedder with a query adapter."""
        from ragkit.training.negatives import embed_queries

        docs = embedder.embed_documents(list(self.corpus.values()))
        return self._per_query(embed_queries(embedder, list(self.queries.values())) @ docs.T)

    def _per_query(self, scores: Any) -> list[float]:
        """nDCG@10 of each query from its row of cosines against the pool."""
        import numpy as np

        from ragkit.eval.metrics import ndcg_at_k

        ids = list(self.corpus)
        out = []
        for qid, row in zip(self.queries, scores, strict=True):
            top = np.argsort(-row, kind="stable")[:10]
            relevance = dict.fromkeys(self.relevant[qid], 1)
            out.append(ndcg_at_k(relevance, {ids[j]: float(row[j]) for j in top}, 10))
        return out

    def reranker_samples(self, rank: Ranker, depth: int = 20) -> list[dict[str, Any]]:
        """Samples for ``CrossEncoderRerankingEvaluator``: each query's ``depth`` best
        passages of the pool by the first stage ``rank(query, texts)`` (best first, with
        its scores under ``"scores"``), and its positives (a positive the first stage
        missed stays missed)."""
        texts = list(self.corpus.values())
        samples = []
        for qid, query in self.queries.items():
            ranked = rank(query, texts)[:depth]
            positives = [self.corpus[pid] for pid in sorted(self.relevant[qid])]
            samples.append({
                "query": query, "positive": positives,
                "documents": [text for text, _ in ranked],
                "scores": [score for _, score in ranked],
            })  # fmt: skip
        return samples

    def reranker_evaluator(self, samples: list[dict[str, Any]]) -> Any:
        """A ``CrossEncoderRerankingEvaluator`` over ``samples``: it also reports the
        first stage's own order (``base_ndcg@10``)."""
        from sentence_transformers.cross_encoder.evaluation import (
            CrossEncoderRerankingEvaluator,
        )

        return CrossEncoderRerankingEvaluator(
            samples,
            at_k=10,
            always_rerank_positives=False,
            name=self.name,
            show_progress_bar=False,
            write_csv=False,
        )

    @staticmethod
    def reranker_predictions(samples: list[dict[str, Any]], model: Any) -> list[list[float]]:
        """The cross-encoder ``model``'s score of each sample's documents."""
        return [
            [float(v) for v in model.predict([(s["query"], d) for d in s["documents"]])]
            if s["documents"]
            else []
            for s in samples
        ]

    @staticmethod
    def reranker_per_query(
        samples: list[dict[str, Any]],
        predictions: list[list[float]] | None = None,
        weight: float = 1.0,
    ) -> list[float]:
        """Each sample's nDCG@10: its documents in the first stage's order
        (``predictions=None``), or by the reranker's ``predictions`` mixed with the
        first stage's scores at ``weight`` as ``CrossEncoderReranker(weight=...)``
        mixes them. A positive the first stage missed counts as not found."""
        from ragkit.eval.metrics import ndcg_at_k
        from ragkit.reranking._mix import mix_scores

        scores = []
        for i, sample in enumerate(samples):
            docs = sample["documents"]
            positives = set(sample["positive"])
            order = {str(j): float(-j) for j in range(len(docs))}
            if predictions is not None and docs:
                hits = [
                    ScoredChunk(Chunk(str(j), d, "", "", 0, len(d)), float(score))
                    for j, (d, score) in enumerate(zip(docs, sample["scores"], strict=True))
                ]
                if weight < 1.0:
                    ranked = [
                        hit.chunk.id for hit in mix_scores(hits, predictions[i], weight, len(hits))
                    ]
                else:  # the reranker alone; ties keep the first stage's order
                    ranked = [
                        str(j)
                        for j in sorted(range(len(docs)), key=lambda j: (-predictions[i][j], j))
                    ]
                # scores from positions: equal scores would be ordered by id (trec_eval)
                order = {cid: float(-r) for r, cid in enumerate(ranked)}
            relevance = {str(j): 1 for j, d in enumerate(docs) if d in positives}
            missed = positives.difference(docs)
            relevance.update({f"missed{j}": 1 for j in range(len(missed))})
            scores.append(ndcg_at_k(relevance, order, 10))
        return scores

    @classmethod
    def best_weight(
        cls, samples: list[dict[str, Any]], predictions: list[list[float]]
    ) -> tuple[float, list[float]]:
        """The mix weight of :data:`WEIGHTS` with the best mean nDCG@10 (the larger
        weight on a tie) and its per-query scores."""
        best: tuple[float, list[float]] | None = None
        for weight in WEIGHTS:
            per_query = cls.reranker_per_query(samples, predictions, weight)
            if best is None or sum(per_query) >= sum(best[1]):
                best = (weight, per_query)
        assert best is not None
        return best

    @property
    def reranker_key(self) -> str:
        return f"{self.name}_{METRIC}"

    @property
    def first_stage_key(self) -> str:
        return f"{self.name}_base_{METRIC}"


def pool_ranker(embedder: Any, retrieval: str = "hybrid", k: int = 20) -> Ranker:
    """A first stage that ranks the pool as a kb with ``embedder`` and ``retrieval``
    ranks its chunks, for :meth:`HeldOut.reranker_samples`: (text, score) pairs.

    The pool's texts become an in-memory kb of one chunk each (a
    :class:`~ragkit.stores.MemoryStore` and a :class:`~ragkit.retrieval.KeywordIndex`),
    searched by the retriever ``RAG(retrieval=...)`` builds, with its fusion settings;
    ``rank`` returns its best ``k``. A reranker judged against this order is judged
    against what ``ask`` would hand it: judged against dense order alone, a reranker
    that loses to the default hybrid retrieval could still be promoted.

    Args:
        embedder: a ragkit embedder (the kb's, so its cache is used).
        retrieval: ``"hybrid"`` (the default of :class:`~ragkit.RAG`), ``"dense"`` or
            ``"keyword"``.
        k: how many texts ``rank`` returns (the reranker's depth).
    """
    from ragkit._build import build_retriever, check_retrieval

    check_retrieval(retrieval)
    built: dict[tuple[str, ...], Any] = {}

    def rank(query: str, texts: list[str]) -> list[tuple[str, float]]:
        key = tuple(texts)
        if key not in built:
            built.clear()
            built[key] = _pool_retriever(embedder, retrieval, texts, build_retriever)
        return [(hit.chunk.text, hit.score) for hit in built[key].retrieve(query, k)]

    return rank


def _pool_retriever(embedder: Any, retrieval: str, texts: list[str], build: Any) -> Any:
    import numpy as np

    from ragkit.retrieval.keyword import KeywordIndex
    from ragkit.stores import MemoryStore

    chunks = [
        Chunk(id=f"p{i}", text=t, document_id=f"p{i}", source="heldout", start=0, end=len(t))
        for i, t in enumerate(texts)
    ]
    store = MemoryStore()
    store.upsert(chunks, np.asarray(embedder.embed_documents(texts), dtype=np.float32))
    keyword = None
    if retrieval != "dense":
        keyword = KeywordIndex()
        keyword.upsert(chunks)
    return build(retrieval, embedder, store, keyword)
