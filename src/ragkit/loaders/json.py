"""JSON and JSON Lines files: one document per object."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigurationError, LoaderError, NoTextError
from ragkit.loaders.text import decode_text, read_bytes
from ragkit.types import Document, document_id

__all__ = ["JsonLoader"]

_LINE_SUFFIXES = frozenset({".jsonl", ".ndjson"})
_MISSING = object()

# (what to call the record in messages, metadata about its place, the part for its id)
_Place = tuple[str, dict[str, int], str]


class JsonLoader:
    """Loads JSON objects as documents.

    A ``.json`` file holds one object (one document) or a list of objects (one each,
    ``metadata["index"]`` is the 0-based position). A ``.jsonl`` / ``.ndjson`` file
    holds one object per line (blank lines skipped, ``metadata["line"]`` is the 1-based
    line number). With any other extension the content decides: one JSON value, else
    JSON Lines.

    A line that is not valid JSON fails the whole file, with its line number in the
    reason: loading part of a file silently would hide the loss.

    Fields are named by dotted paths into nested objects (``"body.text"``); a name
    that is itself a key (``"a.b"``) is taken as is. Objects with an empty text are
    skipped. A string ``title`` field becomes ``metadata["title"]``.

    Args:
        text_field: the field holding the text; it must be a string.
        id_field: a field with a stable per-record id; the document id is derived from
            it (so ids survive reordering), and duplicates are an error. Without it,
            ids come from the line number or list position.
        metadata_fields: fields copied into the metadata under their given names;
            lists and objects are stored as JSON text, missing fields are left out.

    Example:
        >>> loader = JsonLoader(text_field="body.text", metadata_fields=["author"])
        >>> docs = loader.load(Path("posts.jsonl"))  # doctest: +SKIP
    """

    def __init__(
        self,
        text_field: str = "text",
        id_field: str | None = None,
        metadata_fields: Sequence[str] | None = None,
    ) -> None:
        if not text_field:
            raise ConfigurationError("JsonLoader text_field must name a field, e.g. 'text'")
        if isinstance(metadata_fields, str):
            raise ConfigurationError("JsonLoader metadata_fields is a list of names, not one")
        self.text_field = text_field
        self.id_field = id_field
        self.metadata_fields = tuple(metadata_fields or ())

    def load(self, path: Path) -> list[Document]:
        """Read ``path`` into documents.

        Raises:
            NoTextError: no object has a non-empty text.
            LoaderError: invalid JSON, a value that is not an object, a missing or
                non-string text field, or a duplicate id.
        """
        source = str(path)
        text, _ = decode_text(read_bytes(path), source)
        if not text.strip():
            raise NoTextError(source, "the file is empty or holds only whitespace")
        suffix = path.suffix.lower()
        if suffix in _LINE_SUFFIXES:
            fmt, records = "jsonl", list(_lines(text, source))
        else:
            try:
                records = list(_whole(json.loads(text)))
                fmt = "json"
            except json.JSONDecodeError as exc:
                if suffix == ".json" or exc.msg != "Extra data":
                    raise LoaderError(
                        source,
                        f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                    ) from exc
                fmt, records = "jsonl", list(_lines(text, source))
        docs: list[Document] = []
        seen: dict[str, str] = {}
        for place, record in records:
            doc = self._document(record, source, fmt, place, seen)
            if doc is not None:
                docs.append(doc)
        if not docs:
            raise NoTextError(source, f"no object has a non-empty {self.text_field!r} field")
        return docs

    def _document(
        self,
        record: Any,
        source: str,
        fmt: str,
        place: _Place,
        seen: dict[str, str],
    ) -> Document | None:
        where, position, part = place
        if not isinstance(record, dict):
            raise LoaderError(
                source, f"{where}is a JSON {_kind(record)}, not an object; expected objects"
            )
        text = _field(record, self.text_field, source, where, required=True)
        if not isinstance(text, str):
            raise LoaderError(
                source,
                f"{where}field {self.text_field!r} is a JSON {_kind(text)}, not a string; "
                "set JsonLoader(text_field=...) to the field holding the text",
            )
        if not text.strip():
            return None
        metadata: dict[str, Any] = {"format": fmt, **position}
        if isinstance(record.get("title"), str) and self.text_field != "title":
            metadata["title"] = record["title"]
        for name in self.metadata_fields:
            value = _field(record, name, source, where, required=False)
            if value is not _MISSING and value is not None:
                metadata[name] = value if isinstance(value, str | int | float) else _dumps(value)
        if self.id_field is not None:
            key = _field(record, self.id_field, source, where, required=True)
            if isinstance(key, dict | list):
                raise LoaderError(source, f"{where}id field {self.id_field!r} is not a scalar")
            part = f"{self.id_field}={key}"
            if part in seen:
                raise LoaderError(
                    source,
                    f"{where}repeats {self.id_field} {key!r} of {seen[part].rstrip(': ')}; "
                    "ids must be unique within a file",
                )
            seen[part] = where
            metadata[self.id_field] = key
        doc_id = document_id(source, part)
        return Document(text=text, source=source, id=doc_id, metadata=metadata)


def _whole(value: Any) -> Iterator[tuple[_Place, Any]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield (f"item {index}: ", {"index": index}, f"item={index}"), item
    else:
        yield ("", {}, ""), value


def _lines(text: str, source: str) -> Iterator[tuple[_Place, Any]]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoaderError(
                source,
                f"line {number} is not valid JSON ({exc.msg} at column {exc.colno}); "
                "fix or remove that line (JSON Lines holds one object per line)",
            ) from exc
        yield (f"line {number}: ", {"line": number}, f"line={number}"), value


def _field(record: dict[str, Any], name: str, source: str, where: str, *, required: bool) -> Any:
    """The value at dotted path ``name``; a missing required field is an error."""
    if name in record:
        return record[name]
    value: Any = record
    walked: list[str] = []
    for key in name.split("."):
        if not isinstance(value, dict) or key not in value:
            if not required:
                return _MISSING
            at = f" in {'.'.join(walked)!r}" if walked else ""
            keys = ", ".join(map(repr, value)) if isinstance(value, dict) else "none"
            raise LoaderError(
                source,
                f"{where}has no field {name!r} (no key {key!r}{at}; keys there: {keys}); "
                "set the loader's field names to ones the objects have",
            )
        walked.append(key)
        value = value[key]
    return value


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
