"""require(): a missing package and an installed one that fails to import are told apart."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragkit._deps import installed_version, require
from ragkit.errors import MissingDependencyError


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path to install fake packages into."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("rk_fake"):
            del sys.modules[name]


def _install(site: Path, name: str, init: str, version: str | None = None) -> None:
    (site / name).mkdir()
    (site / name / "__init__.py").write_text(init, encoding="utf-8")
    if version is not None:
        dist = site / f"{name}-{version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        (dist / "top_level.txt").write_text(name + "\n", encoding="utf-8")


def test_a_package_that_is_not_installed_is_named_with_its_extra(site: Path) -> None:
    with pytest.raises(MissingDependencyError) as info:
        require("rk_fake_absent", extra="tables", purpose="PDF tables")
    message = str(info.value)
    assert "which is not installed" in message
    assert 'pip install "ragkit[tables]"' in message
    assert info.value.failure is None


def test_an_installed_package_that_fails_to_import_says_what_failed(site: Path) -> None:
    _install(
        site,
        "rk_fake_conflict",
        "raise ImportError(\"cannot import name 'is_offline_mode' from 'huggingface_hub'\")\n",
        version="4.51.3",
    )
    with pytest.raises(MissingDependencyError) as info:
        require("rk_fake_conflict", extra="server", purpose="the embedder")
    message = str(info.value)
    assert "not installed" not in message
    assert "version 4.51.3 is installed" in message
    assert "cannot import name 'is_offline_mode' from 'huggingface_hub'" in message
    assert info.value.version == "4.51.3"
    assert isinstance(info.value.__cause__, ImportError)
    assert installed_version("rk_fake_conflict") == "4.51.3"


def test_a_missing_dependency_of_an_installed_package_is_named(site: Path) -> None:
    _install(site, "rk_fake_needy", "import rk_fake_not_there\n")
    with pytest.raises(MissingDependencyError) as info:
        require("rk_fake_needy", extra="bench", purpose="a benchmark")
    message = str(info.value)
    assert "not installed" not in message
    assert "No module named 'rk_fake_not_there'" in message


def test_a_submodule_missing_from_an_installed_package_is_an_old_version(site: Path) -> None:
    _install(site, "rk_fake_old", "", version="0.0.1")
    with pytest.raises(MissingDependencyError) as info:
        require("rk_fake_old.newer", extra="langchain", purpose="LangChain", package="rk-fake-old")
    assert "version 0.0.1 is installed" in str(info.value)
    assert "rk_fake_old.newer" in str(info.value)


def test_a_working_package_is_returned(site: Path) -> None:
    _install(site, "rk_fake_fine", "VALUE = 42\n")
    assert require("rk_fake_fine", extra="x", purpose="y").VALUE == 42
