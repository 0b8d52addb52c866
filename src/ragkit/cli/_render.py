"""The CLI's output: drawn with rich on a terminal when it is installed (extra ``cli``),
plain text otherwise (a pipe, a file, ``NO_COLOR`` or no rich)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import IO, Any

from ragkit.types import Answer, IndexReport

__all__ = ["print_report", "print_sources", "rich_console"]


def rich_console(file: IO[str] | None = None) -> Any | None:
    """A rich Console on ``file`` (stdout) when rich is installed and it is a terminal."""
    stream = file or sys.stdout
    if os.environ.get("NO_COLOR") or not stream.isatty():
        return None
    try:
        console = importlib.import_module("rich.console")
    except ImportError:
        return None
    return console.Console(file=stream, highlight=False)


def print_sources(answer: Answer, console: Any | None = None) -> None:
    """The numbered sources after a streamed answer: a table with rich, else text."""
    console = console or rich_console()
    if console is None:
        if answer.extractive and not answer.refused:
            print("(extractive answer: sentences quoted from your documents)")
        sources = answer.format_sources()
        if sources:
            print(sources)
        return
    from rich.table import Table
    from rich.text import Text

    if answer.extractive and not answer.refused:
        console.print(Text("extractive answer: sentences quoted from your documents", "dim"))
    if answer.citations:
        table = Table(title="Sources", title_justify="left", show_lines=False)
        for name in ("#", "where", "quote"):
            table.add_column(name, overflow="fold")
        for c in answer.citations:
            quote = c.quote if len(c.quote) <= 300 else c.quote[:300] + "…"
            table.add_row(str(c.marker), Text(c.location), Text(quote, "yellow"))
        console.print(table)
    for claim in answer.unsupported:
        console.print(Text(f"not supported by the sources: {claim}", "red"))
    if answer.refused and answer.related:
        console.print(Text("related passages:", "bold"))
        for hit in answer.related:
            console.print(Text(f"  {hit.chunk.location} (chars {hit.chunk.start}-{hit.chunk.end})"))


def print_report(report: IndexReport, console: Any | None = None) -> None:
    """What ingest or sync did: a table with rich, else ``str(report)``."""
    console = console or rich_console()
    if console is None:
        print(report)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None)
    table.add_column(justify="right")
    table.add_column()
    for name, value in (
        ("added", len(report.added)), ("updated", len(report.updated)),
        ("unchanged", len(report.unchanged)), ("deleted", len(report.deleted)),
        ("failed", len(report.failed)), ("chunks written", report.chunks_added),
        ("chunks removed", report.chunks_deleted), ("seconds", f"{report.seconds:.1f}"),
    ):  # fmt: skip
        table.add_row(name, str(value))
    console.print(table)
    for issue in report.failed:
        console.print(Text(f"failed: {issue.source}: {issue.reason}", "red"))
    for issue in report.warnings:
        console.print(Text(f"warning: {issue.source}: {issue.reason}", "yellow"))
