"""Answers, index reports and retrieved hits as HTML, for Jupyter's ``_repr_html_``.

Every piece of document text is escaped: a passage holding ``<script>`` shows as text.
Only the standard library is used; nothing here is imported by ``import ragkit``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragkit.types import Answer, Citation, IndexReport, ScoredChunk

__all__ = ["answer_html", "hits_html", "report_html"]

_MARKER = re.compile(r"\[(\d+)\]")
_STYLE = (
    "<style>.ragkit mark{background:#fff3a8;padding:0 1px}.ragkit ol{padding-left:1.6em}"
    ".ragkit .rk-loc{font-weight:600}.ragkit .rk-ctx{color:#555;white-space:pre-wrap;"
    "margin:.2em 0 .6em 0;border-left:3px solid #ddd;padding-left:.6em}"
    ".ragkit td,.ragkit th{text-align:left;vertical-align:top;padding:2px 8px}</style>"
)
_ids = itertools.count(1)
#: Characters of a passage shown around a quote, and of a hit's text.
_CONTEXT = 240
_PREVIEW = 400


def _uid() -> str:
    """A prefix for element ids: several answers in one notebook must not share them."""
    return f"rk{next(_ids)}"


def _pages(item: Citation | None, page: int | None, page_end: int | None) -> str:
    if page is None:
        return ""
    label = item.page_label if item is not None and item.page_label else str(page)
    if page_end is None or page_end == page:
        return f"p. {label}"
    end = item.page_label_end if item is not None and item.page_label_end else str(page_end)
    return f"pp. {label}-{end}"


def _highlighted(citation: Citation, answer: Answer) -> str:
    """The cited passage around the quote, the quote marked; all of it escaped."""
    chunk = next((h.chunk for h in answer.contexts if h.chunk.id == citation.chunk_id), None)
    if chunk is None or not chunk.start <= citation.start <= citation.end <= chunk.end:
        return f"<mark>{escape(citation.quote)}</mark>"
    a, b = citation.start - chunk.start, citation.end - chunk.start
    before = chunk.text[max(0, a - _CONTEXT) : a]
    after = chunk.text[b : b + _CONTEXT]
    return (
        ("…" if a > _CONTEXT else "")
        + escape(before)
        + f"<mark>{escape(chunk.text[a:b])}</mark>"
        + escape(after)
        + ("…" if b + _CONTEXT < len(chunk.text) else "")
    )


def answer_html(answer: Answer) -> str:
    """The answer with clickable ``[n]`` markers, then the numbered sources: location,
    page numbers, and the quoted sentences highlighted in their passage."""
    uid = _uid()
    known = {c.marker for c in answer.citations}

    def link(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n not in known:
            return match.group(0)
        return f'<a href="#{uid}-{n}" title="source {n}"><sup>[{n}]</sup></a>'

    text = _MARKER.sub(link, escape(answer.text)).replace("\n", "<br>")
    parts = [_STYLE, '<div class="ragkit">']
    if answer.extractive and not answer.refused:
        parts.append("<p><em>Extractive answer: sentences quoted from your documents.</em></p>")
    parts.append(f"<p>{text}</p>")
    if answer.citations:
        parts.append("<ol>")
        for c in answer.citations:
            pages = _pages(c, c.page, c.page_end)
            where = escape(c.source) + (f", {escape(pages)}" if pages else "")
            parts.append(
                f'<li value="{c.marker}" id="{uid}-{c.marker}"><span class="rk-loc">{where}'
                f"</span> <small>(chars {c.start}-{c.end})</small>"
                f'<div class="rk-ctx">{_highlighted(c, answer)}</div></li>'
            )
        parts.append("</ol>")
    if answer.unsupported:
        parts.append("<p><strong>Not supported by the sources:</strong></p><ul>")
        parts += [f"<li>{escape(claim)}</li>" for claim in answer.unsupported]
        parts.append("</ul>")
    if answer.refused and answer.related:
        parts.append("<p><strong>Related passages:</strong></p>")
        parts.append(hits_html(answer.related, style=False))
    parts.append("</div>")
    return "".join(parts)


def hits_html(hits: Sequence[ScoredChunk], *, style: bool = True) -> str:
    """Retrieved chunks as a table: rank, score, location with pages, text."""
    rows = ["<tr><th>#</th><th>score</th><th>source</th><th>text</th></tr>"]
    for rank, hit in enumerate(hits, 1):
        chunk = hit.chunk
        pages = _pages(None, chunk.page, chunk.page_end)
        where = escape(chunk.source) + (f", {escape(pages)}" if pages else "")
        text = chunk.text if len(chunk.text) <= _PREVIEW else chunk.text[:_PREVIEW] + "…"
        rows.append(
            f"<tr><td>{rank}</td><td>{hit.score:.3f}</td><td>{where}</td>"
            f'<td class="rk-ctx">{escape(text)}</td></tr>'
        )
    table = f'<table class="ragkit">{"".join(rows)}</table>'
    return (_STYLE + table) if style else table


def report_html(report: IndexReport) -> str:
    """What an ``add`` or ``sync`` did: counts, then the failed files and warnings."""
    counts = [
        ("added", len(report.added)),
        ("updated", len(report.updated)),
        ("unchanged", len(report.unchanged)),
        ("deleted", len(report.deleted)),
        ("failed", len(report.failed)),
        ("chunks written", report.chunks_added),
        ("chunks removed", report.chunks_deleted),
    ]
    rows = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in counts)
    parts = [_STYLE, '<div class="ragkit">', f"<table>{rows}</table>",
             f"<p><small>{report.seconds:.1f} s</small></p>"]  # fmt: skip
    for title, issues in (("Failed", report.failed), ("Warnings", report.warnings)):
        if issues:
            parts.append(f"<p><strong>{title}:</strong></p><ul>")
            parts += [
                f"<li><code>{escape(i.source)}</code>: {escape(i.reason)}</li>" for i in issues
            ]
            parts.append("</ul>")
    parts.append("</div>")
    return "".join(parts)
