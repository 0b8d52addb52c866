"""CSV and TSV files: one document per row, or the whole file as one."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ragkit.errors import ConfigurationError, LoaderError, NoTextError
from ragkit.loaders.text import decode_text, read_bytes
from ragkit.types import Document, document_id

__all__ = ["CsvLoader"]

_SNIFF_SAMPLE = 64 * 1024


class CsvLoader:
    """Loads a CSV (or TSV) file; the first row names the columns.

    In ``"rows"`` mode each data row becomes a document whose text is one
    ``"column: value"`` line per non-empty cell, or, with ``text_columns``, only those
    columns (a single text column gives its bare value). ``metadata["row"]`` is the
    1-based data row number (the header row not counted), and each of
    ``metadata_columns`` is copied into the metadata. Rows with no text are skipped.
    In ``"file"`` mode the file's text, as is, is one document.

    The dialect (delimiter, quoting) is sniffed from the first 64 KiB, falling back
    to Excel's (tab-separated for ``.tsv``).

    Args:
        mode: ``"rows"`` (one document per row) or ``"file"`` (one for the file).
        text_columns: columns that make up the text; all when None.
        metadata_columns: columns to copy into each row's metadata.

    Example:
        >>> loader = CsvLoader(text_columns=["question", "answer"], metadata_columns=["id"])
        >>> docs = loader.load(Path("faq.csv"))  # doctest: +SKIP
        >>> docs[0].text  # doctest: +SKIP
        'question: How do I reset my password?\\nanswer: Use the link on the login page.'
    """

    def __init__(
        self,
        mode: Literal["rows", "file"] = "rows",
        text_columns: Sequence[str] | None = None,
        metadata_columns: Sequence[str] | None = None,
    ) -> None:
        if mode not in ("rows", "file"):
            raise ConfigurationError(f"CsvLoader mode must be 'rows' or 'file', not {mode!r}")
        if isinstance(text_columns, str) or isinstance(metadata_columns, str):
            raise ConfigurationError("CsvLoader columns are a list of names, not one string")
        self.mode = mode
        self.text_columns = tuple(text_columns) if text_columns is not None else None
        self.metadata_columns = tuple(metadata_columns or ())

    def load(self, path: Path) -> list[Document]:
        """Read ``path`` into documents.

        Raises:
            NoTextError: the file, or every row, is empty.
            LoaderError: unreadable file, malformed CSV, or a named column is missing.
        """
        source = str(path)
        text, encoding = decode_text(read_bytes(path), source)
        if not text.strip():
            raise NoTextError(source, "the file is empty or holds only whitespace")
        if self.mode == "file":
            return [Document(text, source, metadata={"format": "csv", "encoding": encoding})]
        dialect = _dialect(text, path.suffix.lower() == ".tsv")
        reader = csv.reader(io.StringIO(text, newline=""), dialect)
        try:
            # Blank lines are no rows (as in csv.DictReader).
            rows = [row for row in reader if any(cell.strip() for cell in row)]
        except csv.Error as exc:
            raise LoaderError(
                source, f"malformed CSV near line {reader.line_num}: {exc}; fix the quoting"
            ) from exc
        if not rows:
            raise NoTextError(source, "every cell of the file is empty")
        header = _column_names(rows.pop(0))
        self._check_columns(header, source)
        docs = []
        for number, row in enumerate(rows, start=1):
            cells = dict(zip(header, row, strict=False))
            for extra, value in enumerate(row[len(header) :], start=len(header) + 1):
                cells[f"column {extra}"] = value
            row_text = self._row_text(cells)
            if not row_text:
                continue
            metadata: dict[str, Any] = {"format": "csv", "encoding": encoding, "row": number}
            metadata.update({name: cells.get(name, "") for name in self.metadata_columns})
            docs.append(
                Document(
                    text=row_text,
                    source=source,
                    id=document_id(source, f"row={number}"),
                    metadata=metadata,
                )
            )
        if not docs:
            raise NoTextError(source, "no data row has any text (only a header, or empty rows)")
        return docs

    def _check_columns(self, header: list[str], source: str) -> None:
        wanted = [*(self.text_columns or ()), *self.metadata_columns]
        missing = [name for name in wanted if name not in header]
        if missing:
            raise LoaderError(
                source,
                f"has no column {', '.join(map(repr, missing))}; its columns are "
                f"{', '.join(map(repr, header))}; fix text_columns/metadata_columns",
            )

    def _row_text(self, cells: dict[str, str]) -> str:
        if self.text_columns is not None and len(self.text_columns) == 1:
            return cells.get(self.text_columns[0], "").strip()
        names = self.text_columns if self.text_columns is not None else list(cells)
        return "\n".join(
            f"{name}: {value}" for name in names if (value := cells.get(name, "").strip())
        )


def _dialect(text: str, tab_separated: bool) -> type[csv.Dialect] | csv.Dialect:
    sample = text[:_SNIFF_SAMPLE]
    if len(text) > _SNIFF_SAMPLE and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # whole lines only
    try:
        return csv.Sniffer().sniff(sample, delimiters="\t" if tab_separated else ",;\t|")
    except csv.Error:
        return csv.excel_tab if tab_separated else csv.excel


def _column_names(header: list[str]) -> list[str]:
    """Header cells, stripped, with blanks and duplicates given unique names."""
    names: list[str] = []
    for index, cell in enumerate(header, start=1):
        name = cell.strip() or f"column {index}"
        base, n = name, 2
        while name in names:
            name, n = f"{base} ({n})", n + 1
        names.append(name)
    return names
