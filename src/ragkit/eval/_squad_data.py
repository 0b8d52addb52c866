"""Reading SQuAD-format JSON files: paragraphs become documents, questions keep the id
of the paragraph they were written on; see :mod:`ragkit.eval.squad`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ragkit.errors import ConfigurationError, LoaderError
from ragkit.types import Document

__all__ = ["SquadDataset", "SquadQuestion", "read_squad"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SquadQuestion:
    """One question of a SQuAD file and where its answers are.

    Attributes:
        id: the question id of the file.
        question: the question text.
        answers: the gold answer texts (empty for an unanswerable question).
        document_id: id of the paragraph the question was written on.
        title: title of that paragraph's article.
        is_impossible: SQuAD v2: the paragraph does not answer the question.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    document_id: str
    title: str
    is_impossible: bool = False


def _paragraph_document(title: str, index: int, context: str) -> Document:
    return Document(
        id=f"{title}/{index}",
        source=f"squad:{title}/{index}",
        text=context,
        metadata={"title": title},
    )


def read_squad(path: str | Path) -> tuple[list[Document], list[SquadQuestion]]:
    """The paragraphs (as documents) and questions of a SQuAD-format JSON file.

    Paragraph ``i`` of the article titled ``T`` becomes the document with id ``T/i``,
    source ``squad:T/i`` and metadata ``{"title": T}``. A paragraph or question with the
    wrong shape is logged and skipped.

    Raises:
        LoaderError: the file cannot be read, or is not SQuAD JSON.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LoaderError(str(path), f"cannot be read ({exc.strerror})") from exc
    except ValueError as exc:
        raise LoaderError(str(path), f"is not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise LoaderError(str(path), 'is not SQuAD JSON (expected {"data": [articles]})')
    documents: list[Document] = []
    questions: list[SquadQuestion] = []
    for number, article in enumerate(data["data"]):
        title = str(article.get("title") or f"article-{number}")
        for index, paragraph in enumerate(article.get("paragraphs") or []):
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            if not isinstance(context, str) or not context.strip():
                logger.warning("%s: %s paragraph %d skipped: no context", path, title, index)
                continue
            document = _paragraph_document(title, index, context)
            documents.append(document)
            for qa in paragraph.get("qas") or []:
                if not isinstance(qa, dict) or not qa.get("question"):
                    logger.warning(
                        "%s: %s/%d: a question without text, skipped", path, title, index
                    )
                    continue
                impossible = bool(qa.get("is_impossible", False))
                answers = tuple(
                    str(a["text"])
                    for a in qa.get("answers") or []
                    if isinstance(a, dict) and a.get("text")
                )
                if not answers and not impossible:
                    logger.warning("%s: question %s has no answer, skipped", path, qa.get("id"))
                    continue
                questions.append(
                    SquadQuestion(
                        id=str(qa.get("id") or f"{document.id}#{len(questions)}"),
                        question=str(qa["question"]),
                        answers=() if impossible else answers,
                        document_id=document.id,
                        title=title,
                        is_impossible=impossible,
                    )
                )
    return documents, questions


@dataclass(frozen=True, slots=True)
class SquadDataset:
    """A SQuAD-format JSON file, or a folder of them (read in name order).

    Example:
        >>> data = SquadDataset("../shared/bench/squad")  # doctest: +SKIP
        >>> rag.add(data.documents())  # doctest: +SKIP
        >>> len(data.questions())  # doctest: +SKIP
        5696

    Attributes:
        path: the file or folder.
        files: the JSON files read.
        name: the dataset name: the file's stem, or the folder's name.
    """

    path: Path
    files: tuple[Path, ...]
    name: str

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        where = Path(path)
        files = (where,) if where.is_file() else tuple(sorted(where.glob("*.json")))
        if not files:
            raise ConfigurationError(
                f"{where} is neither a SQuAD JSON file nor a folder holding one"
            )
        object.__setattr__(self, "path", where)
        object.__setattr__(self, "files", files)
        object.__setattr__(
            self, "name", name or (where.stem if where.is_file() else where.resolve().name)
        )

    def read(self) -> tuple[list[Document], list[SquadQuestion]]:
        """The paragraphs and the questions, read once."""
        documents: list[Document] = []
        questions: list[SquadQuestion] = []
        for file in self.files:
            docs, qs = read_squad(file)
            documents += docs
            questions += qs
        return documents, questions

    def documents(self) -> list[Document]:
        """Every paragraph, as a document, in file order."""
        return self.read()[0]

    def questions(self) -> list[SquadQuestion]:
        """Every question, in file order."""
        return self.read()[1]
