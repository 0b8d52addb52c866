"""Text, Markdown and HTML loaders, and the public surface of ``ragkit.loaders``."""

from __future__ import annotations

import codecs
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ragkit.loaders
from ragkit.errors import LoaderError, NoTextError, UnsupportedFormatError
from ragkit.loaders import HtmlLoader, MarkdownLoader, TextLoader
from ragkit.loaders.markdown import parse_markdown
from ragkit.loaders.text import form_feed_pages
from ragkit.protocols import Loader


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


# --- public surface ---------------------------------------------------------------


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(ragkit.loaders).items()
        if not name.startswith("_") and not isinstance(value, type(sys))
    }
    assert set(ragkit.loaders.__all__) == public
    assert len(ragkit.loaders.__all__) == len(public)  # no duplicates


def test_every_loader_fits_the_protocol() -> None:
    for name in ragkit.loaders.__all__:
        if name.endswith("Loader"):
            assert isinstance(getattr(ragkit.loaders, name)(), Loader), name


def test_importing_loaders_imports_no_parser() -> None:
    code = (
        "import sys, ragkit.loaders; "
        "print(sorted(m for m in ('pypdf', 'bs4', 'docx') if m in sys.modules))"
    )
    src = Path(ragkit.loaders.__file__).parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(src)},
    )
    assert result.stdout.strip() == "[]"


# --- text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        pytest.param(codecs.BOM_UTF8 + "Grüße\n".encode(), "utf-8", id="utf-8-bom"),
        pytest.param(codecs.BOM_UTF16_LE + "Grüße\n".encode("utf-16-le"), "utf-16-le", id="le"),
        pytest.param(codecs.BOM_UTF16_BE + "Grüße\n".encode("utf-16-be"), "utf-16-be", id="be"),
        pytest.param("Grüße\n".encode(), "utf-8", id="utf-8"),
        pytest.param("Grüße\n".encode("cp1252"), "cp1252", id="cp1252"),
    ],
)
def test_text_is_decoded_by_bom_then_utf8_then_cp1252(
    tmp_path: Path, data: bytes, encoding: str
) -> None:
    doc = TextLoader().load(_write(tmp_path, "a.txt", data))[0]

    assert doc.text == "Grüße\n"  # no BOM character left in front
    assert doc.metadata == {"format": "text", "encoding": encoding}
    assert doc.pages == ()


def test_invalid_utf8_falls_back_without_failing(tmp_path: Path) -> None:
    # 0x81 is unassigned in cp1252 too, so only latin-1 decodes it.
    data = b"price: 5\x80 \x81 ok\n"

    doc = TextLoader().load(_write(tmp_path, "a.txt", data))[0]

    assert doc.metadata["encoding"] == "latin-1"
    assert doc.text.startswith("price: 5")
    assert doc.text.endswith(" ok\n")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", id="nul-bytes"),
        pytest.param(bytes(range(1, 32)) * 20 + b"some text", id="control-chars"),
    ],
)
def test_binary_data_named_txt_is_unsupported(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, "image.txt", data)

    with pytest.raises(UnsupportedFormatError) as info:
        TextLoader().load(path)

    assert info.value.source == str(path)
    assert info.value.reason.startswith("binary data, not text")


@pytest.mark.parametrize("content", ["", "  \n\t\n"])
def test_empty_text_file_has_no_text(tmp_path: Path, content: str) -> None:
    with pytest.raises(NoTextError):
        TextLoader().load(_write(tmp_path, "a.txt", content))


def test_unreadable_paths_are_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="cannot read the file"):
        TextLoader().load(tmp_path / "missing.txt")
    with pytest.raises(LoaderError, match="is a directory"):
        TextLoader().load(tmp_path)


def test_form_feeds_make_pages_and_stay_in_the_text(tmp_path: Path) -> None:
    text = "page one\n[Page 1]\n\f\npage two\n[Page 2]\n\f\npage three [Page 3]\n\f\n"

    doc = TextLoader().load(_write(tmp_path, "rfc.txt", text))[0]

    assert doc.text == text
    assert [p.number for p in doc.pages] == [1, 2, 3]
    for page in doc.pages:
        body = doc.text[page.start : page.end]
        assert f"[Page {page.number}]" in body
        assert "\f" not in body
    assert doc.text[doc.pages[0].end] == "\f"
    assert doc.page_at(doc.text.index("page two")).number == 2


@given(st.lists(st.text(alphabet="ab \n", max_size=8), min_size=1, max_size=6))
def test_form_feed_pages_cover_every_page_in_order(parts: list[str]) -> None:
    text = "\f".join(parts)

    pages = form_feed_pages(text)

    # Every part is a page, except a blank one after the last form feed.
    expected = parts if parts[-1].strip() or len(parts) == 1 else parts[:-1]
    if len(parts) == 1:
        assert pages == ()
    else:
        assert [text[p.start : p.end] for p in pages] == expected
        assert [p.number for p in pages] == list(range(1, len(expected) + 1))


# --- markdown ---------------------------------------------------------------------

MARKDOWN = """\
---
title: "Guide: timeouts"
tags: [a, b]
---
Intro paragraph.

# Top level #

Some text with a # hash.

```python
# not a heading
## nor this
```

~~~~
# still code
~~~~

Setext Title
============

## Sub *section* with `code` and [a link](https://x.y) ##

Second setext
-------------

- list item
---

    # indented code

####### seven hashes is text
#hashtag is text
"""


def test_markdown_headings_are_found_at_their_lines(tmp_path: Path) -> None:
    doc = MarkdownLoader().load(_write(tmp_path, "g.md", MARKDOWN))[0]

    assert doc.text == MARKDOWN
    assert [(h.level, h.title) for h in doc.headings] == [
        (1, "Top level"),
        (1, "Setext Title"),
        (2, "Sub section with code and a link"),
        (2, "Second setext"),
    ]
    for heading in doc.headings:
        assert heading.start == 0 or doc.text[heading.start - 1] == "\n"
        line = doc.text[heading.start :].split("\n", 1)[0]
        assert line.lstrip("# ").startswith(heading.title.split()[0])
    assert doc.text[doc.headings[0].start :].startswith("# Top level")
    assert doc.text[doc.headings[1].start :].startswith("Setext Title\n===")
    assert doc.heading_path_at(doc.text.index("Second setext")) == (
        "Setext Title",
        "Second setext",
    )


def test_markdown_title_is_front_matter_then_first_h1(tmp_path: Path) -> None:
    with_front = MarkdownLoader().load(_write(tmp_path, "a.md", MARKDOWN))[0]
    without = MarkdownLoader().load(_write(tmp_path, "b.md", "text\n\n## Two\n# One\n"))[0]
    untitled = MarkdownLoader().load(_write(tmp_path, "c.md", "just text\n"))[0]

    assert with_front.metadata["title"] == "Guide: timeouts"
    assert without.metadata["title"] == "One"
    assert "title" not in untitled.metadata
    assert untitled.metadata["format"] == "markdown"


def test_unclosed_front_matter_is_ordinary_text() -> None:
    headings, front = parse_markdown("---\ntitle: x\n\n# Real\n")

    assert front == {}
    assert [h.title for h in headings] == ["Real"]


def test_markdown_with_crlf_line_endings() -> None:
    text = "# One\r\n\r\nTwo\r\n---\r\n"

    headings, _ = parse_markdown(text)

    assert [(h.start, h.level, h.title) for h in headings] == [(0, 1, "One"), (9, 2, "Two")]


# --- html -------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html><head><title>  The   Title </title>
<style>body { color: red }</style><script>var hidden = "SCRIPT TEXT";</script></head>
<body>
<header><a href="/">Site logo</a> SITE BANNER</header>
<nav><ul><li>Home NAVIGATION</li></ul></nav>
<div role="navigation">MORE NAVIGATION</div>
<main>
<article>
<header><h1>Main <em>heading</em><a class="headerlink" href="#main">¶</a></h1></header>
<p>First    paragraph
   spans lines.</p>
<p>Second&nbsp;paragraph with <b>bold</b>text.</p>
<h2 id="x">Details</h2>
<ul><li>one</li><li>two</li></ul>
<pre>  keep   this
    layout</pre>
<table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>
<aside>An in-article note.</aside>
<noscript>NOSCRIPT TEXT</noscript><template>TEMPLATE TEXT</template>
<p hidden>HIDDEN TEXT</p><svg><text>SVG TEXT</text></svg><!-- COMMENT TEXT -->
</article>
</main>
<aside>SIDEBAR TEXT</aside>
<footer>FOOTER TEXT</footer>
</body></html>
"""


def test_html_keeps_visible_content_and_drops_chrome(tmp_path: Path) -> None:
    doc = HtmlLoader().load(_write(tmp_path, "p.html", PAGE))[0]

    for hidden in ("SCRIPT", "color: red", "SITE BANNER", "NAVIGATION", "NOSCRIPT", "TEMPLATE",
                   "HIDDEN", "SVG", "COMMENT", "SIDEBAR", "FOOTER", "¶"):  # fmt: skip
        assert hidden not in doc.text, hidden
    assert "An in-article note." in doc.text
    assert doc.metadata == {"format": "html", "encoding": "utf-8", "title": "The Title"}


def test_html_text_keeps_block_structure(tmp_path: Path) -> None:
    doc = HtmlLoader().load(_write(tmp_path, "p.html", PAGE))[0]

    assert doc.text.startswith("Main heading\n\nFirst paragraph spans lines.\n\n")
    assert "\n\nSecond paragraph with boldtext.\n\nDetails\n\none\ntwo\n\n" in doc.text
    assert "\n\n  keep   this\n    layout\n\n" in doc.text
    assert "\n\nName: a | Value: 1\n\n" in doc.text  # a row keeps its header names


def test_html_headings_point_at_their_text(tmp_path: Path) -> None:
    doc = HtmlLoader().load(_write(tmp_path, "p.html", PAGE))[0]

    assert [(h.level, h.title) for h in doc.headings] == [(1, "Main heading"), (2, "Details")]
    for heading in doc.headings:
        assert doc.text[heading.start :].startswith(heading.title)
    assert doc.heading_path_at(doc.text.index("one")) == ("Main heading", "Details")


def test_page_level_header_with_the_h1_is_kept(tmp_path: Path) -> None:
    page = "<body><header><h1>Spec Title</h1></header><section><p>Body.</p></section></body>"

    doc = HtmlLoader().load(_write(tmp_path, "spec.html", page))[0]

    assert doc.text == "Spec Title\n\nBody."
    assert doc.metadata["title"] == "Spec Title"  # no <title>: the first h1


def test_html_is_decoded_by_its_meta_charset(tmp_path: Path) -> None:
    page = '<html><head><meta charset="shift_jis"></head><body><p>日本語のテキスト</p></body>'
    legacy = '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"><p>café'

    japanese = HtmlLoader().load(_write(tmp_path, "ja.html", page.encode("shift_jis")))[0]
    french = HtmlLoader().load(_write(tmp_path, "fr.html", legacy.encode("latin-1")))[0]

    assert japanese.text == "日本語のテキスト"
    assert japanese.metadata["encoding"] == "shift_jis"
    assert french.text == "café"


def test_html_with_only_scripts_has_no_text(tmp_path: Path) -> None:
    page = "<html><head><script>document.write('hi')</script></head><body> </body></html>"

    with pytest.raises(NoTextError):
        HtmlLoader().load(_write(tmp_path, "app.html", page))


def test_deeply_nested_html_does_not_hit_the_recursion_limit(tmp_path: Path) -> None:
    depth = 3 * sys.getrecursionlimit()
    page = "<div>" * depth + "deep text" + "</div>" * depth

    doc = HtmlLoader().load(_write(tmp_path, "deep.html", page))[0]

    assert doc.text == "deep text"
