"""Where a knowledge base lives, parsed once at the edge into typed settings.

``RAG(location)`` and every ``--kb`` option take a folder, a ``postgresql://`` URL or a
``milvus://`` URL. :func:`parse_location` turns that into one of the settings objects
below; everything under it receives the object, never the string. Passwords and tokens
are not taken from URLs that ragkit prints: :func:`redact` strips them, and
``PGPASSWORD`` / ``MILVUS_TOKEN`` in the environment are the recommended way to pass
them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ragkit.errors import ConfigurationError

__all__ = [
    "KB_NAME",
    "LocalSettings",
    "MilvusSettings",
    "PostgresSettings",
    "Settings",
    "parse_location",
    "redact",
]

#: What a kb (or Milvus collection) name may be: it names tables and schemas.
KB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: What a tenant name may be (see :mod:`ragkit.backends.catalog`).
TENANT_NAME = re.compile(r"^[a-z][a-z0-9]{0,19}$")
DEFAULT_TENANT = "default"
_PG_SCHEMES = ("postgresql", "postgres")
_MILVUS_SCHEMES = ("milvus", "milvus+https")


@dataclass(frozen=True)
class LocalSettings:
    """A kb folder (``None``: in memory)."""

    path: Path | None


@dataclass(frozen=True)
class PostgresSettings:
    """A kb in PostgreSQL: ``postgresql://user@host:port/db?kb=name``.

    Attributes:
        dsn: the connection string handed to libpq, without ragkit's own parameters.
        kb: the knowledge base's name (default ``default``).
        tenant: who owns it (default ``default``); the kb's tables live in the schema
            ``ragkit_<kb>``, or ``ragkit_<tenant>__<kb>`` for another tenant, so two
            tenants' kbs of one name never share a table.
        pool_min, pool_max: connections the pool keeps and may open.
        lock_wait: seconds a writer waits for another writer of the kb before
            :class:`~ragkit.errors.KnowledgeBaseLockedError`.
        ef_search: HNSW candidate list size per query (at least ``k``).
        connect_timeout: seconds to wait for a connection.
    """

    dsn: str
    kb: str = "default"
    tenant: str = DEFAULT_TENANT
    pool_min: int = 1
    pool_max: int = 8
    lock_wait: float = 60.0
    ef_search: int = 100
    connect_timeout: float = 10.0

    @property
    def namespace(self) -> str:
        """The kb's name within the database: ``kb``, or ``<tenant>__<kb>``."""
        return _namespace(self.tenant, self.kb)

    @property
    def location(self) -> str:
        dsn = redact(self.dsn)
        tenant = "" if self.tenant == DEFAULT_TENANT else f"&tenant={self.tenant}"
        return f"{dsn}{'&' if '?' in dsn else '?'}kb={self.kb}{tenant}"


@dataclass(frozen=True)
class MilvusSettings:
    """A kb in Milvus: ``milvus://host:port?collection=name`` (``milvus+https://`` for TLS).

    Attributes:
        uri: the server's ``http(s)://host:port``.
        collection: the kb's name (default ``ragkit``): its chunks live in the
            collection of that name (``<tenant>__<collection>`` for a tenant other than
            ``default``), its record and manifest in ``<that>_record``.
        tenant: who owns it.
        db_name: the Milvus database.
        token: from ``MILVUS_TOKEN`` in the environment (never from the URL).
        lock_wait: seconds a writer waits for another writer's lease.
    """

    uri: str
    collection: str = "ragkit"
    tenant: str = DEFAULT_TENANT
    db_name: str = ""
    token: str = field(default="", repr=False)
    lock_wait: float = 60.0

    @property
    def namespace(self) -> str:
        """The chunk collection's name: ``collection``, or ``<tenant>__<collection>``."""
        return _namespace(self.tenant, self.collection)

    @property
    def location(self) -> str:
        tenant = "" if self.tenant == DEFAULT_TENANT else f"&tenant={self.tenant}"
        return f"milvus://{urlsplit(self.uri).netloc}?collection={self.collection}{tenant}"


Settings = LocalSettings | PostgresSettings | MilvusSettings


def _namespace(tenant: str, name: str) -> str:
    return name if tenant == DEFAULT_TENANT else f"{tenant}__{name}"


def redact(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _number(params: dict[str, str], key: str, default: float, url: str) -> float:
    if key not in params:
        return default
    try:
        value = float(params.pop(key))
    except ValueError:
        raise ConfigurationError(f"{redact(url)}: {key} must be a number") from None
    if value <= 0:
        raise ConfigurationError(f"{redact(url)}: {key} must be above 0")
    return value


def _name(value: str, what: str, url: str) -> str:
    if not KB_NAME.match(value) or "__" in value:
        raise ConfigurationError(
            f"{redact(url)}: {what} {value!r} must be 1 to 40 lowercase letters, digits or "
            "single underscores, starting with a letter"
        )
    return value


def _tenant(params: dict[str, str], url: str) -> str:
    tenant = params.pop("tenant", DEFAULT_TENANT)
    if not TENANT_NAME.match(tenant):
        raise ConfigurationError(
            f"{redact(url)}: tenant {tenant!r} must be 1 to 20 lowercase letters or digits, "
            "starting with a letter"
        )
    return tenant


def _postgres(url: str) -> PostgresSettings:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    kb = _name(params.pop("kb", "default"), "kb", url)
    tenant = _tenant(params, url)
    pool_min = int(_number(params, "pool_min", 1, url))
    pool_max = int(_number(params, "pool_max", 8, url))
    if pool_min > pool_max:
        raise ConfigurationError(f"{redact(url)}: pool_min is above pool_max")
    settings = PostgresSettings(
        dsn="",
        kb=kb,
        tenant=tenant,
        pool_min=pool_min,
        pool_max=pool_max,
        lock_wait=_number(params, "lock_wait", 60.0, url),
        ef_search=int(_number(params, "ef_search", 100, url)),
        connect_timeout=_number(params, "connect_timeout", 10.0, url),
    )
    # quote, not quote_plus: libpq reads %20, not +, as a space (options=-c a=b).
    query = urlencode(params, quote_via=quote)
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, query, ""))
    return PostgresSettings(**{**settings.__dict__, "dsn": dsn})


def _milvus(url: str) -> MilvusSettings:
    parts = urlsplit(url)
    if parts.password is not None:
        raise ConfigurationError(
            f"{redact(url)}: put the Milvus token in MILVUS_TOKEN, not in the URL"
        )
    if not parts.hostname:
        raise ConfigurationError(f"{url}: a Milvus URL needs a host, e.g. milvus://127.0.0.1:19530")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    collection = _name(params.pop("collection", "ragkit"), "collection", url)
    tenant = _tenant(params, url)
    lock_wait = _number(params, "lock_wait", 60.0, url)
    db_name = params.pop("db", parts.path.strip("/"))
    if params:
        raise ConfigurationError(f"{url}: unknown parameters {', '.join(sorted(params))}")
    scheme = "https" if parts.scheme == "milvus+https" else "http"
    return MilvusSettings(
        uri=f"{scheme}://{parts.hostname}:{parts.port or 19530}",
        collection=collection,
        tenant=tenant,
        db_name=db_name,
        token=os.environ.get("MILVUS_TOKEN", ""),
        lock_wait=lock_wait,
    )


def parse_location(location: str | os.PathLike[str] | Settings | None) -> Settings:
    """The settings for a kb folder (or ``None``, in memory) or URL (settings pass as
    they are)."""
    if isinstance(location, (LocalSettings, PostgresSettings, MilvusSettings)):
        return location
    if location is None:
        return LocalSettings(None)
    if isinstance(location, os.PathLike):
        return LocalSettings(Path(location))
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    if scheme in _PG_SCHEMES:
        return _postgres(location)
    if scheme in _MILVUS_SCHEMES:
        return _milvus(location)
    if scheme:
        raise ConfigurationError(
            f"unknown knowledge-base URL scheme {scheme!r} in {redact(location)}; use a "
            "folder, postgresql://user@host/db?kb=name or milvus://host:port?collection=name"
        )
    return LocalSettings(Path(location))
