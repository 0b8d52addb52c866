from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ragkit import tokens


def test_seeding_writes_the_verified_file_where_tiktoken_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert tokens.seed_tiktoken_cache("cl100k_base")
    url, sha256 = tokens._BPE_FILES["cl100k_base"]
    cached = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha256


def test_existing_cache_entry_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    url, _ = tokens._BPE_FILES["cl100k_base"]
    cached = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    cached.write_bytes(b"downloaded by tiktoken")
    assert tokens.seed_tiktoken_cache("cl100k_base")
    assert cached.read_bytes() == b"downloaded by tiktoken"


def test_disabled_cache_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert not tokens.seed_tiktoken_cache("cl100k_base")


def test_unknown_encoding_is_not_seeded() -> None:
    assert not tokens.seed_tiktoken_cache("no_such_encoding")


def test_count_tokens_matches_known_counts() -> None:
    # cl100k_base: "hello" and " world" are one token each.
    assert tokens.count_tokens("hello world") == 2
    assert tokens.count_tokens("") == 0
    # Special-token text is counted as plain text instead of raising.
    assert tokens.count_tokens("<|endoftext|>") > 1
