"""Loading a model writes no progress bar of its own to the user's stderr."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_loading_the_embedder_draws_no_progress_bar() -> None:
    code = (
        "from ragkit.embeddings import SentenceTransformerEmbedder\n"
        "e = SentenceTransformerEmbedder(); e.warm_up(); print(e.embed_query('x').shape)\n"
        "import transformers.utils.logging as t; print(t.is_progress_bar_enabled())\n"
    )
    # A clean environment: the CLI tests (in this process) set HF_HUB_DISABLE_PROGRESS_BARS,
    # which would switch the bars off in the child before it starts.
    quiet = ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE")
    env = {k: v for k, v in os.environ.items() if k not in quiet}
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env=env,
    )
    assert run.stdout.split() == ["(384,)", "True"]  # bars restored for the program's own use
    assert "%|" not in run.stderr, run.stderr
    assert "Loading weights" not in run.stderr, run.stderr
