"""API keys: made once, shown once, kept hashed in the catalog, checked in constant time.

A key reads ``rk_<id>_<secret>``: ``id`` (12 hex digits) finds the key's row, and only
the SHA-256 of ``secret`` (32 random bytes, URL-safe base64) is stored. A key this long
needs no slow hash: nobody can guess it, and its hash is compared with
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

from ragkit.backends.catalog import SCOPES, ApiKey, Catalog, check_tenant
from ragkit.errors import ConfigurationError

__all__ = ["KEY_PREFIX", "authenticate", "create_key", "hash_secret", "parse_key"]

KEY_PREFIX = "rk_"


def hash_secret(secret: str) -> str:
    """The stored form of a key's secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_key(presented: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a key string, or None when it is not shaped like a key."""
    if not presented.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = presented[len(KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret or len(presented) > 200:
        return None
    if any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


def create_key(
    catalog: Catalog, tenant: str, scopes: Sequence[str] = ("read",), name: str = ""
) -> tuple[ApiKey, str]:
    """Make a key for ``tenant``, keep its hash in ``catalog``; returns the key and the
    whole key string, which is shown once and never kept.

    Raises:
        ConfigurationError: an unknown scope or an invalid tenant name.
    """
    check_tenant(tenant)
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ConfigurationError(
            f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}"
        )
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    ordered = tuple(s for s in SCOPES if s in scopes)
    key = ApiKey(id=key_id, tenant=tenant, scopes=ordered, name=name, created=time.time())
    catalog.add_key(key, hash_secret(secret))
    return key, f"{KEY_PREFIX}{key_id}_{secret}"


def authenticate(catalog: Catalog, presented: str) -> ApiKey | None:
    """The live key ``presented`` is, or None (unknown, revoked, or a wrong secret)."""
    parsed = parse_key(presented)
    if parsed is None:
        return None
    key_id, secret = parsed
    found = catalog.find_key(key_id)
    if found is None:
        hmac.compare_digest(hash_secret(secret), hash_secret(""))  # same work either way
        return None
    key, stored = found
    if not hmac.compare_digest(hash_secret(secret), stored) or key.revoked:
        return None
    return key
