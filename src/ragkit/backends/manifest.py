"""How a knowledge base was built (``ragkit.json`` in a folder; a row in a database)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragkit._files import write_whole
from ragkit.errors import ConfigurationError, EmbedderMismatchError

__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "Manifest"]

MANIFEST_NAME = "ragkit.json"
#: Bumped when the layout of a kb folder changes incompatibly.
FORMAT_VERSION = 1


@dataclass
class Manifest:
    """What built a knowledge base: embedder, store backend, chunker settings.

    Attributes:
        embedder_model: the embedder's ``model_id``.
        dimension: vector length; ``0`` until the first vectors are written.
        store: the store backend name (``chroma``, ``faiss``, ``memory``) or ``custom``.
        chunker: the chunker's settings, for the record.
        tenant: who owns the kb (``ragkit ingest --tenant``; what a server's API keys
            are checked against).
        format_version: layout version of the kb folder.
        embedder_path: the embedder's model folder when it is a local one recorded by
            ``RAG.reembed`` (a fine-tuned model): ``RAG`` opened without an embedder
            loads it. Empty otherwise.
        reembedding: the model id a ``RAG.reembed`` is switching to, while it runs; a
            kb left with it set was interrupted and holds vectors of two models.
        query_adapter: the folder of the query adapter (``ragkit finetune adapter``)
            that ``RAG`` applies to queries when opened without an embedder.
    """

    embedder_model: str
    dimension: int = 0
    store: str = "chroma"
    chunker: dict[str, Any] = field(default_factory=dict)
    tenant: str = "default"
    format_version: int = FORMAT_VERSION
    embedder_path: str = ""
    reembedding: str = ""
    query_adapter: str = ""

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        """The manifest of ``folder``, or None for a new folder."""
        path = folder / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"{path} is not a readable ragkit manifest ({exc}); restore it from a "
                "backup or rebuild the knowledge base in a new folder"
            ) from exc
        return cls.from_json(text, str(path))

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        """The manifest saved as ``text`` (by :meth:`to_json`); ``where`` names it in errors.

        Raises:
            ConfigurationError: not a manifest, or written by a newer ragkit.
        """
        try:
            data = json.loads(text)
            version = int(data.get("format_version", 0))
        except (ValueError, AttributeError, TypeError) as exc:
            raise ConfigurationError(
                f"{where} is not a readable ragkit manifest ({exc}); restore it from a "
                "backup or rebuild the knowledge base"
            ) from exc
        if version > FORMAT_VERSION:
            raise ConfigurationError(
                f"{where} was written by a newer ragkit (format {version}; this one reads "
                f"up to {FORMAT_VERSION}); upgrade ragkit to open it"
            )
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def to_json(self) -> str:
        """The manifest as JSON text (what :meth:`from_json` reads)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def write(self, folder: Path) -> None:
        """Write atomically: a crash leaves the old or the new manifest, never half."""
        folder.mkdir(parents=True, exist_ok=True)
        write_whole(folder / MANIFEST_NAME, self.to_json().encode("utf-8"))

    def check_embedder(self, model_id: str, folder: Path | str) -> None:
        """Raise when ``model_id`` is not the embedder that built the kb, or when a
        re-embedding was interrupted (only its new embedder may open the kb then, to
        finish it)."""
        if self.reembedding and model_id != self.reembedding:
            raise EmbedderMismatchError(
                f"{folder}: re-embedding with {self.reembedding!r} was interrupted, so it "
                "holds vectors of two models. Run it again to finish: ragkit finetune use "
                f"--kb {folder} MODEL_DIR (or rag.reembed(embedder))"
            )
        if model_id not in (self.embedder_model, self.reembedding):
            raise EmbedderMismatchError(
                f"{folder} was built with the embedder {self.embedder_model!r}, not "
                f"{model_id!r}: its vectors cannot be compared. Open it with that embedder, "
                "or build a new knowledge base elsewhere"
            )

    def check_dimension(self, dimension: int, folder: Path | str) -> None:
        """Raise when the embedder's vectors have another length than the stored ones."""
        if self.dimension and dimension != self.dimension:
            raise EmbedderMismatchError(
                f"{folder} holds {self.dimension}-dimensional vectors but the embedder "
                f"{self.embedder_model!r} makes {dimension}-dimensional ones"
            )
