"""PdfLoader on small PDFs written by hand in each test."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pypdf
import pytest

from ragkit.errors import LoaderError, NoTextError
from ragkit.loaders import AutoLoader, PdfLoader
from ragkit.loaders.pdf import PAGE_SEPARATOR


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(
    pages: list[list[str]], *, labels: str = "", title: str = "", bad_xref: bool = False
) -> bytes:
    """A valid PDF whose page ``i`` shows the lines ``pages[i]`` in Helvetica.

    An empty list makes a page without any text. ``labels`` is the body of a
    ``/PageLabels`` number tree (e.g. ``"0 << /S /r >> 2 << /S /D >>"``).
    ``bad_xref`` writes wrong offsets, which pypdf repairs with a logged warning.
    """
    count = len(pages)
    font = 3 + 2 * count
    objects: dict[int, bytes] = {}
    catalog = b"<< /Type /Catalog /Pages 2 0 R"
    if labels:
        catalog += b" /PageLabels << /Nums [" + labels.encode() + b"] >>"
    objects[1] = catalog + b" >>"
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode()
    for i, lines in enumerate(pages):
        page, content = 3 + 2 * i, 4 + 2 * i
        objects[page] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>"
        ).encode()
        ops = "".join(f"({_escape(line)}) Tj 0 -16 Td " for line in lines)
        stream = f"BT /F1 12 Tf 72 720 Td {ops}ET".encode() if lines else b""
        objects[content] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    objects[font] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    info = font + 1
    objects[info] = f"<< /Title ({_escape(title)}) >>".encode() if title else b"<< >>"

    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out) + (7 if bad_xref else 0)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in sorted(objects))
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (len(objects) + 1, info)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _write(tmp_path: Path, data: bytes, name: str = "doc.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _encrypted(data: bytes, user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    # RC4 needs no extra package, unlike AES.
    writer.encrypt(user_password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


THREE_PAGES = [["Alpha page one", "second line"], ["Bravo page two"], ["Charlie page three"]]


def test_pages_partition_the_text_into_each_pages_extracted_text(tmp_path: Path) -> None:
    path = _write(tmp_path, make_pdf(THREE_PAGES))

    doc = PdfLoader().load(path)[0]

    reader = pypdf.PdfReader(path)
    assert [p.number for p in doc.pages] == [1, 2, 3]
    for span, page, lines in zip(doc.pages, reader.pages, THREE_PAGES, strict=True):
        page_text = doc.text[span.start : span.end]
        assert page_text == page.extract_text()
        assert all(line in page_text for line in lines)
        assert span.label is None  # no /PageLabels in the file
    # Only the separator lies between two pages, and the spans cover the rest.
    assert doc.pages[0].start == 0
    assert doc.pages[-1].end == len(doc.text)
    for before, after in zip(doc.pages, doc.pages[1:], strict=False):
        assert doc.text[before.end : after.start] == PAGE_SEPARATOR
    assert doc.page_at(doc.text.index("Bravo")).number == 2
    assert doc.source == str(path)
    assert doc.metadata["format"] == "pdf"
    assert "pages_without_text" not in doc.metadata


def test_page_labels_come_from_the_pdf_when_it_defines_them(tmp_path: Path) -> None:
    pages = [["front"], ["preface"], ["chapter one"], ["chapter one, more"]]
    path = _write(tmp_path, make_pdf(pages, labels="0 << /S /r >> 2 << /S /D >>"))

    doc = PdfLoader().load(path)[0]

    assert [p.label for p in doc.pages] == ["i", "ii", "1", "2"]


def test_title_comes_from_the_document_info_unless_it_is_a_file_name(tmp_path: Path) -> None:
    titled = _write(tmp_path, make_pdf([["x"]], title="Annual  Report"), "a.pdf")
    named = _write(tmp_path, make_pdf([["x"]], title="report_final.doc"), "b.pdf")

    assert PdfLoader().load(titled)[0].metadata["title"] == "Annual Report"
    assert "title" not in PdfLoader().load(named)[0].metadata


def test_pages_without_text_are_kept_empty_and_listed(tmp_path: Path) -> None:
    path = _write(tmp_path, make_pdf([["Alpha"], [], ["Charlie"], []]))

    doc = PdfLoader().load(path)[0]

    assert doc.metadata["pages_without_text"] == [2, 4]
    second = doc.pages[1]
    assert second.start == second.end
    assert "Charlie" in doc.text[doc.pages[2].start : doc.pages[2].end]


def test_a_pdf_without_any_text_layer_is_refused_with_advice(tmp_path: Path) -> None:
    path = _write(tmp_path, make_pdf([[], []]))

    with pytest.raises(NoTextError) as info:
        PdfLoader().load(path)

    assert info.value.source == str(path)
    assert "no text layer on any of its 2 pages" in info.value.reason
    assert "ocrmypdf" in info.value.reason


def test_a_page_whose_extraction_fails_costs_only_that_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, make_pdf([["Alpha"], ["Bravo BROKEN"], ["Charlie"]]))
    extract = pypdf.PageObject.extract_text

    def failing_extract(page: pypdf.PageObject, *args: object, **kwargs: object) -> str:
        text = extract(page, *args, **kwargs)  # type: ignore[arg-type]
        if "BROKEN" in text:
            raise KeyError("/Widths")
        return text

    monkeypatch.setattr(pypdf.PageObject, "extract_text", failing_extract)

    doc = PdfLoader().load(path)[0]

    assert doc.metadata["pages_without_text"] == [2]
    assert "page 2: KeyError" in doc.metadata["page_errors"][0]
    assert "Charlie" in doc.text
    assert "Bravo" not in doc.text


def test_encrypted_pdf_with_an_empty_user_password_opens_without_one(tmp_path: Path) -> None:
    path = _write(tmp_path, _encrypted(make_pdf(THREE_PAGES), user_password=""))

    doc = PdfLoader().load(path)[0]

    assert "Bravo page two" in doc.text


def test_encrypted_pdf_needs_its_password(tmp_path: Path) -> None:
    path = _write(tmp_path, _encrypted(make_pdf(THREE_PAGES), user_password="s3cret"))

    with pytest.raises(LoaderError) as info:
        PdfLoader().load(path)
    assert "encrypted" in info.value.reason
    assert "PdfLoader(password=" in info.value.reason

    with pytest.raises(LoaderError, match=r"password given .* is wrong"):
        PdfLoader(password="nope").load(path)

    doc = PdfLoader(password="s3cret").load(path)[0]
    assert "Charlie page three" in doc.text
    assert len(doc.pages) == 3


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"%PDF-1.4\nthis is not a PDF body at all\n", id="garbage"),
        pytest.param(b"", id="empty"),
        pytest.param(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R", id="truncated"),
    ],
)
def test_corrupt_pdf_is_a_loader_error_naming_the_parse_error(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, data)

    with pytest.raises(LoaderError) as info:
        PdfLoader().load(path)

    assert info.value.source == str(path)
    assert info.value.reason.startswith("cannot be parsed as a PDF (")
    assert "Error:" in info.value.reason  # names pypdf's error


def test_pypdf_warnings_go_to_debug_logging_not_the_terminal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, make_pdf(THREE_PAGES, bad_xref=True))
    caplog.set_level(logging.DEBUG)
    pypdf_logger = logging.getLogger("pypdf")

    doc = PdfLoader().load(path)[0]

    assert "Bravo page two" in doc.text
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]
    ours = [r.getMessage() for r in caplog.records if r.name == "ragkit.loaders.pdf"]
    assert any("pypdf warned" in m and str(path) in m for m in ours)
    # Left as found: pypdf logs normally again outside a load.
    assert pypdf_logger.propagate
    assert not pypdf_logger.handlers
    logging.getLogger("pypdf.test").warning("outside a load")
    assert any(r.name == "pypdf.test" for r in caplog.records)


def test_auto_loader_reads_a_pdf_named_txt_as_a_pdf(tmp_path: Path) -> None:
    path = _write(tmp_path, make_pdf(THREE_PAGES), "report.txt")

    doc = AutoLoader().load(path)[0]

    assert doc.metadata["format"] == "pdf"
    assert len(doc.pages) == 3
