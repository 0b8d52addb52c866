"""Every ``ragkit`` command takes ``--config ragkit.toml``; flags win over the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragkit.cli import main
from ragkit.testing import FakeEmbedder


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import ragkit.embeddings

    fake = FakeEmbedder()
    monkeypatch.setattr(ragkit.embeddings, "SentenceTransformerEmbedder", lambda *a, **k: fake)
    path = tmp_path / "ragkit.toml"
    path.write_text(
        f'kb = "{tmp_path / "kb"}"\nstore = "memory"\nverify = false\n'
        '[chunker]\nchunk_size = 30\nchunk_overlap = 0\nlength = "characters"\n'
        '[retrieval]\nmode = "keyword"\nk = 1\n',
        encoding="utf-8",
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(
        "The default timeout is five seconds.\n\nThe pool holds ten connections.\n"
    )
    return path


def test_ingest_sync_ask_and_stats_read_the_kb_and_pipeline_from_the_file(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    assert main(["ingest", str(docs), "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chunks_added"] > 1  # chunk_size 30 characters (the default makes one)
    assert main(["sync", str(docs), "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] == [str(docs / "a.txt")]

    assert main(["stats", "--config", str(config)]) == 0
    stats = capsys.readouterr().out
    assert "retrieval: keyword" in stats
    assert "store: memory" in stats

    assert main(["ask", "How many connections does the pool hold?", "--config", str(config),
                 "--json"]) == 0  # fmt: skip
    answer = json.loads(capsys.readouterr().out)
    assert len(answer["contexts"]) == 1  # k = 1 from the file
    assert "pool holds ten" in answer["text"]

    # --kb wins over the file's kb.
    other = tmp_path / "other"
    assert main(["ingest", str(docs), "--config", str(config), "--kb", str(other)]) == 0
    assert (other / "ragkit.json").exists()


def test_a_bad_config_is_an_error_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('kb = "kb"\n[chunker]\nchunk_sise = 3\n')
    assert main(["stats", "--config", str(bad)]) == 2
    assert "[chunker] unknown key 'chunk_sise'" in capsys.readouterr().err
    secret = tmp_path / "secret.toml"
    secret.write_text('kb = "kb"\n[generator]\nkind = "openai"\napi_key = "sk-x"\n')
    assert main(["ask", "q", "--config", str(secret)]) == 2
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY" in err
    assert "sk-x" not in err


def test_without_kb_or_config_the_command_says_what_to_give(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["stats"]) == 2
    assert "--kb, or kb = ... in a --config file" in capsys.readouterr().err


def test_keys_use_the_config_kb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ragkit.toml"
    path.write_text(f'kb = "{tmp_path / "kbs"}"\n[server]\nport = 9000\n')
    assert main(["keys", "create", "--config", str(path), "--tenant", "acme"]) == 0
    assert capsys.readouterr().out.startswith("rk_")
    assert main(["keys", "list", "--config", str(path)]) == 0
    assert "acme" in capsys.readouterr().out


def test_serve_reads_a_ragkit_toml_or_a_file_of_server_settings(tmp_path: Path) -> None:
    from ragkit.cli.serve import _pipeline_config

    legacy = tmp_path / "server.toml"
    legacy.write_text('kb = "kbs"\nport = 9000\ncors-origins = ["https://a.example"]\n')
    assert _pipeline_config(str(legacy)) is None
    full = tmp_path / "ragkit.toml"
    full.write_text('kb = "kbs"\n[server]\nport = 9001\n[retrieval]\nmode = "dense"\n')
    config = _pipeline_config(str(full))
    assert config is not None
    settings = config.server_settings(host="0.0.0.0", port=None)
    assert (settings.kb, settings.port, settings.host) == ("kbs", 9001, "0.0.0.0")
    assert config.options == {"retrieval": "dense"}
