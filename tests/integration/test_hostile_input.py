"""A folder of bad files next to good ones: each bad one reported, every good one indexed.

The ingest runs in a subprocess so that its peak memory (``ru_maxrss``) can be measured
on its own. The big file is 200 MB of text by default (``RAGKIT_HOSTILE_BIG_MB``
changes it): the loaders hold a file's text in memory, so files over
``ragkit.loaders.text.MAX_FILE_BYTES`` (32 MiB) are reported as failed without being
read, and the content hash streams the bytes, so memory does not grow with the file.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pypdf
import pytest

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"
BIG_MB = int(os.environ.get("RAGKIT_HOSTILE_BIG_MB", "200"))
PASSWORD = "s3cret"


def _pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF; an empty string makes a page without text (a "scan")."""
    count = len(pages)
    font = 3 + 2 * count
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: (
            "<< /Type /Pages /Kids ["
            + " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
            + f"] /Count {count} >>"
        ).encode(),
        font: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for i, line in enumerate(pages):
        objects[3 + 2 * i] = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>"
        ).encode()
        stream = f"BT /F1 12 Tf 72 720 Td ({line}) Tj ET".encode() if line else b""
        objects[4 + 2 * i] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in sorted(objects))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _encrypted(data: bytes, password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


GOOD = {
    "good/plain.txt": b"Plain notes about the harbor lantern.\n",
    "good/notes.md": b"# Orchard\n\nThe orchard grows copper apples.\n",
    "good/page.html": b"<html><body><h1>Glacier</h1><p>The glacier moves slowly.</p></body></html>",
    "good/report.pdf": _pdf(["Meadow report page one", "Summit page two"]),
    "good/utf16.txt": "\ufeffUTF-16 text about the violet canyon.\n".encode("utf-16-le"),
    "good/latin1.txt": "Caf\xe9 menu: cr\xe8me br\xfbl\xe9e and ember tea.\n".encode("latin-1"),
    "good/open-encrypted.pdf": _encrypted(_pdf(["Ember protocol, no password"]), ""),
    "good/we ird – näme #%&@!.txt": b"Unusual characters in the path, still indexed.\n",
    "good/one-long-line.txt": ("lantern " * (10 * 2**20 // 8)).encode(),  # 10 MB, one line
}
GOOD["good/" + "/".join(f"d{i}" for i in range(40)) + "/deep.txt"] = (
    b"Deep inside nested folders.\n"
)

BAD = {
    "bad/corrupt.pdf": b"%PDF-1.4\n" + os.urandom(2000),
    "bad/truncated.pdf": _pdf(["Cut short halfway"])[:150],
    "bad/locked.pdf": _encrypted(_pdf(["Secret harbor plans"]), PASSWORD),
    "bad/scanned.pdf": _pdf(["", ""]),
    "bad/empty.txt": b"",
    "bad/binary.txt": bytes(range(256)) * 64,
    "bad/all-script.html": b"<html><head><script>var x = 1; alert(x);</script></head>"
    b"<body><script>document.write('hi')</script></body></html>",
}

SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from dataclasses import asdict
    from ragkit import RAG
    from ragkit.loaders import AutoLoader, PdfLoader
    from ragkit.testing import FakeEmbedder

    kb, folder, password, first = sys.argv[1:5]
    loader = AutoLoader({"pdf": PdfLoader(password=password)}) if password else None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with RAG(kb, store="faiss", embedder=FakeEmbedder(), loader=loader, verify=False) as rag:
        rag.add(first)  # the big file alone, to measure what it costs
        after_big = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = rag.sync(folder)
        hits = rag.retrieve("harbor lantern", k=3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"report": asdict(report), "rss_before_kb": before,
                      "rss_after_big_kb": after_big, "rss_peak_kb": peak, "hits": len(hits)}))
    """
)


def _build(root: Path) -> dict[str, Path]:
    made: dict[str, Path] = {}
    for name, data in {**GOOD, **BAD}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made[name] = path
    big = root / "bad" / "huge.txt"
    block = ("All work and no play makes a very large file. " * 22 + "\n").encode()
    with big.open("wb") as file:
        for _ in range(BIG_MB * 2**20 // len(block)):
            file.write(block)
    made["bad/huge.txt"] = big
    unreadable = root / "bad" / "unreadable.txt"
    unreadable.write_text("You may not read this.\n", encoding="utf-8")
    unreadable.chmod(0)
    made["bad/unreadable.txt"] = unreadable
    os.symlink("..", root / "good" / "loop")  # a folder loop
    os.symlink("self-loop.txt", root / "bad" / "self-loop.txt")  # a link to itself
    return made


def _ingest(tmp_path: Path, folder: Path, password: str = "") -> dict[str, Any]:
    script = tmp_path / "ingest.py"
    script.write_text(SCRIPT, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "kb"),
            str(folder),
            password,
            str(folder / "bad" / "huge.txt"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_bad_files_are_reported_and_good_ones_indexed(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    made = _build(folder)
    root_can_read = os.geteuid() == 0  # root reads a chmod 000 file anyway

    out = _ingest(tmp_path, folder)
    report = out["report"]
    failed = {
        Path(f["source"]).relative_to(folder).as_posix(): f["reason"] for f in report["failed"]
    }
    indexed = {Path(s).relative_to(folder).as_posix() for s in report["added"]}

    expected_bad = (
        set(BAD) | {"bad/huge.txt"} | (set() if root_can_read else {"bad/unreadable.txt"})
    )
    assert set(failed) == expected_bad, failed
    assert indexed == set(GOOD) | ({"bad/unreadable.txt"} if root_can_read else set())
    for name, reason in failed.items():
        assert len(reason) > 15, (name, reason)
    assert "password" in failed["bad/locked.pdf"]
    assert "MiB" in failed["bad/huge.txt"]
    assert "split" in failed["bad/huge.txt"]
    assert "binary" in failed["bad/binary.txt"]
    assert out["hits"] == 3

    # Memory (ru_maxrss, KiB on Linux): the big file is hashed in 1 MiB blocks and
    # refused by size, never held. The 10 MB line is held, with its ~10,000 chunks; its
    # cost comes from chunking (token counts of the whole text), bounded by the limit.
    big_mb = (out["rss_after_big_kb"] - out["rss_before_kb"]) / 1024
    assert big_mb < 64, f"peak memory grew by {big_mb:.0f} MB for the {BIG_MB} MB file"
    total_mb = (out["rss_peak_kb"] - out["rss_before_kb"]) / 1024
    assert total_mb < 1024, f"peak memory grew by {total_mb:.0f} MB"

    # The same folder again, with the PDF password: only the locked PDF changes.
    again = _ingest(tmp_path, folder, PASSWORD)["report"]
    assert [Path(s).name for s in again["added"]] == ["locked.pdf"]
    assert again["updated"] == []
    assert again["deleted"] == []
    assert made["bad/locked.pdf"].exists()
