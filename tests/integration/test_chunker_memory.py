"""Chunking one 10 MB line takes memory in proportion to the text, not to its words.

Measured in a subprocess: the peak resident size of chunking (``VmHWM`` of
``/proc/self/status``, its high-water mark reset just before) over the resident size
before. (``ru_maxrss`` would do, but in a forked child it starts from the parent's
resident size, which in a full test session holds a model.) Before the chunker cut,
measured and merged pieces one at a time, this line (1.3 million words) took more than
300 MB beyond its own 10 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = textwrap.dedent(
    """
    import json
    from ragkit.chunking import RecursiveChunker
    from ragkit.testing.memory import reset_peak, status_mb
    from ragkit.types import Document


    chunker = RecursiveChunker()  # the defaults: 160 cl100k tokens, 24 of overlap
    chunker.split(Document(text="warm up the tokenizer " * 100, source="warm.txt"))
    text = "lantern " * (10 * 2**20 // 8)  # 10 MB, one line, 1.3 million words
    doc = Document(text=text, source="line.txt")
    before = status_mb("VmRSS:")
    reset_peak()
    chunks = chunker.split(doc)
    peak = status_mb("VmHWM:")
    ok = all(text[c.start : c.end] == c.text for c in chunks)
    print(json.dumps({"extra_mb": peak - before, "chunks": len(chunks), "offsets_ok": ok}))
    """
)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_one_10_mb_line_is_chunked_in_flat_memory() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"chunking a 10 MB line: +{out['extra_mb']:.0f} MB peak, {out['chunks']} chunks")
    assert out["offsets_ok"]
    assert out["chunks"] > 5000  # 1.3 million words, about 160 tokens a chunk
    # The text itself is 10 MB; its chunks (with their overlap) about 12 MB more.
    assert out["extra_mb"] < 80, f"chunking took {out['extra_mb']:.0f} MB beyond the text"
