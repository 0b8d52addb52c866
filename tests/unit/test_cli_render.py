"""The CLI draws with rich on a terminal, and prints plain text otherwise."""

from __future__ import annotations

import io
import sys

import pytest

from ragkit.cli._render import print_report, print_sources, rich_console
from ragkit.types import Answer, Citation, FileIssue, IndexReport

ANSWER = Answer(
    question="q",
    text="Checks: 1,204 [1]",
    citations=(Citation(1, "c1", "report.pdf", 10, 50, "State: Texas | Checks: 1,204", page=2),),
    extractive=True,
)


def test_plain_text_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert rich_console(io.StringIO()) is None  # not a tty
    print_sources(ANSWER)
    out = capsys.readouterr().out
    assert "[1] report.pdf, p. 2 (chars 10-50)" in out
    print_report(IndexReport(added=("a",), failed=(FileIssue("b.pdf", "corrupt"),)))
    assert "failed: b.pdf: corrupt" in capsys.readouterr().out


def test_plain_text_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    assert rich_console(Tty()) is None


def test_rich_draws_a_sources_table_and_the_report() -> None:
    console_mod = pytest.importorskip("rich.console")
    buffer = io.StringIO()
    console = console_mod.Console(file=buffer, width=100, force_terminal=False)
    print_sources(ANSWER, console)
    print_report(IndexReport(added=("a",), chunks_added=3,
                             warnings=(FileIssue("s.pdf", "no text"),)), console)  # fmt: skip
    out = buffer.getvalue()
    assert "Sources" in out
    assert "report.pdf, p. 2" in out
    assert "State: Texas | Checks: 1,204" in out
    assert "chunks written" in out
    assert "warning: s.pdf: no text" in out
