"""Format sniffing, AutoLoader and walk."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from ragkit.errors import ConfigurationError, LoaderError, UnsupportedFormatError
from ragkit.loaders import AutoLoader, detect_format, walk
from ragkit.types import Document


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("Inside a docx.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


HTML = "<!DOCTYPE html><html><head><title>T</title></head><body><p>Hi there</p></body></html>"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("page.txt", HTML, "html"),
        ("page.txt", "\ufeff  \n<html><body><p>x</p></body></html>", "html"),
        ("notes.md", HTML, "html"),  # content wins over the extension
        ("fragment.txt", "<div><p>one</p><p>two</p></div>", "html"),
        ("readme.md", '<p align="center"><img src="x.png"></p>\n\n# Title\n', "markdown"),
        ("prose.txt", "Use <b> for bold and <i> for italics.", "text"),
        ("data.txt", '[{"text": "a"}]', "json"),
        ("data.log", '{"text": "a"}\n{"text": "b"}\n', "json"),
        ("refs.txt", "[1] Fielding, R. HTTP/1.1", "text"),
        ("broken.json", "{not json", "json"),  # the extension decides; the loader reports
        ("table.tsv", "a\tb\n1\t2\n", "csv"),
        ("notes.markdown", "# x", "markdown"),
        ("plain", "just words", "text"),
        ("fake.pdf", "not really a pdf", "pdf"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, content: str, expected: str) -> None:
    assert detect_format(_write(tmp_path, name, content)) == expected


def test_magic_bytes_beat_the_extension(tmp_path: Path) -> None:
    assert detect_format(_write(tmp_path, "scan.txt", b"%PDF-1.7\n%\xe2\xe3\n")) == "pdf"
    assert detect_format(_write(tmp_path, "letter.bin", _docx_bytes())) == "docx"
    # A ZIP that is not a .docx is no docx, and the text loader refuses it.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.bin", bytes(200))
    other_zip = _write(tmp_path, "archive.txt", buffer.getvalue())
    assert detect_format(other_zip) == "text"
    with pytest.raises(UnsupportedFormatError, match="binary data"):
        AutoLoader().load(other_zip)


def test_auto_loader_loads_by_content(tmp_path: Path) -> None:
    html = AutoLoader().load(_write(tmp_path, "page.txt", HTML))[0]
    docx = AutoLoader().load(_write(tmp_path, "letter.bin", _docx_bytes()))[0]
    jsonl = AutoLoader().load(_write(tmp_path, "x.txt", '{"text": "a"}\n{"text": "b"}\n'))

    assert (html.text, html.metadata["format"]) == ("Hi there", "html")
    assert (docx.text, docx.metadata["format"]) == ("Inside a docx.", "docx")
    assert [d.text for d in jsonl] == ["a", "b"]


def test_binary_named_txt_fails_clearly(tmp_path: Path) -> None:
    path = _write(tmp_path, "photo.txt", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01")

    with pytest.raises(UnsupportedFormatError) as info:
        AutoLoader().load(path)

    assert info.value.source == str(path)
    assert "binary data, not text" in info.value.reason


class UpperLoader:
    """A user's own loader: no base class, just ``load``."""

    def load(self, path: Path) -> list[Document]:
        return [Document(text=path.read_text().upper(), source=str(path))]


def test_auto_loader_uses_the_loaders_it_is_given(tmp_path: Path) -> None:
    loader = AutoLoader({"text": UpperLoader()})

    assert loader.load(_write(tmp_path, "a.txt", "shout"))[0].text == "SHOUT"
    assert loader.load(_write(tmp_path, "b.md", "# calm"))[0].text == "# calm"
    with pytest.raises(ConfigurationError, match="unknown formats \\['rtf'\\]"):
        AutoLoader({"rtf": UpperLoader()})


def test_auto_loader_on_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="cannot read the file"):
        AutoLoader().load(tmp_path / "gone.txt")


# --- walk -------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for name in [
        "index.md",
        "b.txt",
        "guides/setup.md",
        "guides/deep/more.md",
        "guides/deep/data.csv",
        "drafts/wip.md",
        ".git/config",
        "guides/.hidden.md",
        "a/z.md",
    ]:
        _write(root, name, "x")
    return root


def _rel(root: Path, paths: object) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]  # type: ignore[attr-defined]


def test_walk_yields_every_visible_file_in_sorted_order(tree: Path) -> None:
    assert _rel(tree, walk(tree)) == [
        "a/z.md",
        "b.txt",
        "drafts/wip.md",
        "guides/deep/data.csv",
        "guides/deep/more.md",
        "guides/setup.md",
        "index.md",
    ]


def test_walk_paths_are_under_root_as_given(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.parent)

    assert next(iter(walk("docs"))) == Path("docs/a/z.md")


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (["*.md"], [], ["a/z.md", "drafts/wip.md", "guides/deep/more.md", "guides/setup.md",
                        "index.md"]),
        (["guides/*.md"], [], ["guides/setup.md"]),
        (["guides/**/*.md"], [], ["guides/deep/more.md", "guides/setup.md"]),
        (["**/deep/*"], [], ["guides/deep/data.csv", "guides/deep/more.md"]),
        (["*.md"], ["drafts/", "deep"], ["a/z.md", "guides/setup.md", "index.md"]),
        (["**/*"], ["*.md"], ["b.txt", "guides/deep/data.csv"]),
        (["[ab]*"], [], ["b.txt"]),  # matches names, and "a" is a folder
        (["[!iz]*.md"], [], ["drafts/wip.md", "guides/deep/more.md", "guides/setup.md"]),
        (["?.txt", "*.csv"], [], ["b.txt", "guides/deep/data.csv"]),
        (["/*.md"], [], ["index.md"]),
        (["**/*.md"], ["**/drafts/**", "**/deep/**"], ["a/z.md", "guides/setup.md", "index.md"]),
    ],
)  # fmt: skip
def test_walk_include_and_exclude_patterns(
    tree: Path, include: list[str], exclude: list[str], expected: list[str]
) -> None:
    assert _rel(tree, walk(tree, include=include, exclude=exclude)) == expected


def test_walk_skips_hidden_names_unless_asked(tree: Path) -> None:
    everything = _rel(tree, walk(tree, hidden=True))

    assert ".git/config" in everything
    assert "guides/.hidden.md" in everything
    assert not [p for p in _rel(tree, walk(tree)) if "/." in "/" + p]


def test_walk_survives_symlink_loops(tree: Path) -> None:
    os.symlink(tree, tree / "guides" / "loop", target_is_directory=True)
    os.symlink(tree / "guides", tree / "a" / "again", target_is_directory=True)

    found = _rel(tree, walk(tree))

    # Each real folder is visited once; "a/again" reaches guides/ first (sorted order).
    assert len(found) == len(set(found)) == 7
    assert "a/again/setup.md" in found
    assert not [p for p in found if "loop" in p]


def test_walk_on_a_file_yields_that_file(tree: Path) -> None:
    assert list(walk(tree / "index.md", include=["*.csv"])) == [tree / "index.md"]


def test_walk_on_a_missing_root_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="no such file or folder"):
        walk(tmp_path / "nowhere")
