"""`ragkit serve --config F --workers N`: every worker builds the file's pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit.backends.catalog import KbInfo
from ragkit.backends.local_catalog import LocalCatalog

pytestmark = pytest.mark.integration


def test_a_worker_app_opens_kbs_with_the_config_files_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm: object
) -> None:
    pytest.importorskip("fastapi")
    from ragkit.server.app import CONFIG_ENV, SETTINGS_ENV, create_app_from_env

    root = tmp_path / "kbs"
    config = tmp_path / "ragkit.toml"
    config.write_text(
        f'kb = "{root}"\nstore = "memory"\nverify = false\n[retrieval]\nmode = "dense"\nk = 2\n',
        encoding="utf-8",
    )
    monkeypatch.setenv(SETTINGS_ENV, f'{{"kb": "{root}"}}')
    monkeypatch.setenv(CONFIG_ENV, str(config))
    app = create_app_from_env()
    info: KbInfo = LocalCatalog(root).create_kb("default", "docs")
    rag = app.state.ragkit.kbs._opener(info)
    try:
        assert rag.qa.verifier is None  # verify = false
        assert rag.retrieval == "dense"
        assert rag.qa.k == 2
        assert rag.store_name == "memory"
    finally:
        rag.close()
