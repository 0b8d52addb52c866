"""Read retrieval benchmarks in the BEIR layout.

A BEIR folder holds::

    corpus.jsonl      {"_id": ..., "title": ..., "text": ..., "metadata": {...}} per line
    queries.jsonl     {"_id": ..., "text": ..., "metadata": {...}} per line
    qrels/test.tsv    query-id <tab> corpus-id <tab> score, after a header line
    qrels/train.tsv   (and dev.tsv, ...: one file per split)

The corpus is read a line at a time, so it is never all in memory. A line that is not
a JSON object with an ``_id`` is logged and skipped, and the rest is read.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigurationError, LoaderError
from ragkit.types import Document

__all__ = ["BeirDataset", "beir_document", "read_corpus", "read_qrels", "read_queries"]

logger = logging.getLogger(__name__)


def beir_document(record: dict[str, Any], name: str) -> Document:
    """The document for one corpus record: title and text, the title kept in metadata.

    Example:
        >>> doc = beir_document({"_id": "7", "title": "Tea", "text": "It is hot."}, "demo")
        >>> doc.id, doc.source, doc.text
        ('7', 'beir:demo/7', 'Tea\\n\\nIt is hot.')
    """
    corpus_id = str(record["_id"])
    title = str(record.get("title") or "").strip()
    text = str(record.get("text") or "")
    return Document(
        id=corpus_id,
        source=f"beir:{name}/{corpus_id}",
        text=f"{title}\n\n{text}" if title else text,
        metadata={"title": title},
    )


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """JSON objects with an ``_id``, one per line; bad lines are logged and skipped."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise LoaderError(str(path), f"cannot be read ({exc.strerror})") from exc
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                logger.warning("%s:%d: skipped, not JSON (%s)", path, number, exc.msg)
                continue
            if not isinstance(record, dict) or "_id" not in record:
                logger.warning("%s:%d: skipped, not an object with an _id", path, number)
                continue
            yield record


def read_corpus(path: str | Path, name: str | None = None) -> Iterator[Document]:
    """Stream the documents of a ``corpus.jsonl`` (see :func:`beir_document`).

    Args:
        path: the ``corpus.jsonl`` file.
        name: dataset name used in each document's ``source``; by default the name of
            the folder holding the file.
    """
    path = Path(path)
    name = name or path.resolve().parent.name
    for record in _records(path):
        yield beir_document(record, name)


def read_queries(path: str | Path) -> dict[str, str]:
    """Query id -> query text, from a ``queries.jsonl``, in file order."""
    return {str(r["_id"]): str(r.get("text") or "") for r in _records(Path(path))}


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Query id -> document id -> grade, from a qrels ``.tsv``, queries in file order.

    The first line is skipped when it is a header (its score column is not a number).
    A later line without three tab-separated fields or with a non-integer score is
    logged and skipped. A document listed twice for a query keeps its last grade.
    """
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise LoaderError(str(path), f"cannot be read ({exc.strerror})") from exc
    with handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                logger.warning("%s:%d: skipped, expected query-id, corpus-id, score", path, number)
                continue
            query_id, corpus_id, score = row[0].strip(), row[1].strip(), row[2].strip()
            try:
                grade = int(score)
            except ValueError:
                if number > 1:
                    logger.warning(
                        "%s:%d: skipped, score %r is not an integer", path, number, score
                    )
                continue
            qrels.setdefault(query_id, {})[corpus_id] = grade
    return qrels


@dataclass(frozen=True, slots=True)
class BeirDataset:
    """A benchmark folder in the BEIR layout.

    Example:
        >>> data = BeirDataset("../shared/bench/scifact")  # doctest: +SKIP
        >>> queries, qrels = data.split("test")  # doctest: +SKIP
        >>> rag.add(list(data.corpus()))  # doctest: +SKIP

    Attributes:
        path: the folder.
        name: the dataset name; by default the folder's name.
    """

    path: Path
    name: str

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        folder = Path(path)
        missing = [
            part
            for part in ("corpus.jsonl", "queries.jsonl", "qrels")
            if not (folder / part).exists()
        ]
        if missing:
            raise ConfigurationError(
                f"{folder} is not a BEIR dataset folder: missing {', '.join(missing)} "
                "(expected corpus.jsonl, queries.jsonl and qrels/<split>.tsv)"
            )
        object.__setattr__(self, "path", folder)
        object.__setattr__(self, "name", name or folder.resolve().name)

    @property
    def splits(self) -> tuple[str, ...]:
        """Names of the splits that have a qrels file, sorted (``test``, ``train``, ...)."""
        return tuple(sorted(p.stem for p in (self.path / "qrels").glob("*.tsv")))

    def corpus(self) -> Iterator[Document]:
        """Stream every corpus document, in file order."""
        return read_corpus(self.path / "corpus.jsonl", self.name)

    def queries(self) -> dict[str, str]:
        """Every query, id -> text, whatever its split."""
        return read_queries(self.path / "queries.jsonl")

    def qrels(self, split: str = "test") -> dict[str, dict[str, int]]:
        """The relevance judgments of ``split``.

        Raises:
            ConfigurationError: the dataset has no such split.
        """
        path = self.path / "qrels" / f"{split}.tsv"
        if not path.is_file():
            raise ConfigurationError(
                f"{self.path} has no split {split!r} (no {path}); "
                f"its splits are: {', '.join(self.splits) or 'none'}"
            )
        return read_qrels(path)

    def split(self, split: str = "test") -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        """The queries of ``split`` (in qrels order) and its qrels.

        Queries judged in the qrels but missing from ``queries.jsonl`` are logged and
        left out of both.
        """
        qrels = self.qrels(split)
        texts = self.queries()
        missing = [q for q in qrels if q not in texts]
        if missing:
            logger.warning(
                "%s: %d %s queries have qrels but no text in queries.jsonl, skipped: %s",
                self.name,
                len(missing),
                split,
                ", ".join(missing[:10]),
            )
            for query_id in missing:
                del qrels[query_id]
        return {q: texts[q] for q in qrels}, qrels
