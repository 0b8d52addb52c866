"""``ragkit keys`` and ``ragkit serve``'s settings (the server itself: test_server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit.backends.keys import authenticate
from ragkit.backends.local_catalog import LocalCatalog
from ragkit.cli.main import main
from ragkit.server.settings import ServerSettings


def test_keys_create_prints_the_key_once_list_shows_ids_revoke_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kbs = str(tmp_path / "kbs")
    code = main(["keys", "create", "--kb", kbs, "--tenant", "acme", "--scopes", "read,write",
                 "--name", "ci"])  # fmt: skip
    assert code == 0
    secret = capsys.readouterr().out.strip()
    catalog = LocalCatalog(Path(kbs))
    key = authenticate(catalog, secret)
    assert key is not None
    assert (key.tenant, key.scopes, key.name) == ("acme", ("read", "write"), "ci")
    assert main(["keys", "list", "--kb", kbs]) == 0
    listing = capsys.readouterr().out
    assert key.id in listing
    assert secret.split("_")[-1] not in listing
    assert main(["keys", "revoke", "--kb", kbs, key.id]) == 0
    assert authenticate(catalog, secret) is None
    assert main(["keys", "revoke", "--kb", kbs, "000000000000"]) == 1
    assert main(["keys", "create", "--kb", kbs, "--tenant", "acme", "--scopes", "root"]) == 2


def test_serve_refuses_several_workers_on_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("uvicorn")
    assert main(["serve", "--kb", str(tmp_path), "--workers", "2"]) == 2
    assert "one worker" in capsys.readouterr().err


def test_settings_from_a_file_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "ragkit.toml"
    config.write_text(
        'kb = "postgresql://db/ragkit"\nport = 9000\ncors-origins = ["https://a.example/"]\n'
        'sync_roots = ["/srv/docs"]\nrate_limit = 0\n'
    )
    settings = ServerSettings.from_file(config).updated({"port": 9100, "host": None})
    assert settings.port == 9100
    assert settings.host == "127.0.0.1"
    assert settings.cors_origins == ("https://a.example",)
    assert settings.sync_roots == (Path("/srv/docs"),)
    assert ServerSettings.from_mapping(__import__("json").loads(settings.to_json())) == settings
    config.write_text("prot = 1\n")
    with pytest.raises(ValueError, match="unknown server setting 'prot'"):
        ServerSettings.from_file(config)
    with pytest.raises(ValueError, match="job_stale_after"):
        ServerSettings(job_heartbeat=10, job_stale_after=5)
