"""What an operator chooses for ``ragkit serve``: from flags, a TOML or JSON file, or code.

Nothing here imports FastAPI, so the CLI can read and check a configuration before the
server's dependencies are loaded. A file holds the same names as
:class:`ServerSettings` (dashes or underscores)::

    # ragkit.toml
    kb = "postgresql://ragkit@db/ragkit"
    host = "0.0.0.0"
    port = 8000
    cors_origins = ["https://chat.example.com"]
    sync_roots = ["/srv/shared-docs"]
    rate_limit = 600          # requests per minute and key; 0 turns the limit off
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigurationError

__all__ = ["ServerSettings"]

_MIB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    """How one ragkit server runs.

    Example:
        >>> settings = ServerSettings(kb="kbs", port=8080, cors_origins=("https://a.example",))
        >>> settings.port
        8080

    Attributes:
        kb: the engine served: a root folder of kbs, one kb folder, or a
            ``postgresql://`` / ``milvus://`` URL (every kb of every tenant in it).
        host: the address to listen on (loopback by default).
        port: the TCP port.
        workers: uvicorn worker processes; a local folder allows only 1.
        cors_origins: origins a browser may call the API from; empty: none (CORS closed).
        max_request_bytes: largest request body; larger ones answer 413.
        rate_limit: requests per minute per API key (a token bucket in the catalog,
            shared by the workers; per worker process on Milvus); 0 turns it off.
        rate_burst: requests a key may send at once before the rate applies (default:
            the per-minute rate).
        sync_roots: server-side folders under which ``sync`` may read; empty: ``sync``
            is refused.
        default_k: chunks used for ``search`` and ``ask`` when a request names none.
        job_workers: ingest jobs run at once in this process.
        job_heartbeat: seconds between a running job's heartbeats.
        job_stale_after: seconds without a heartbeat after which a running job counts
            as failed (its worker is gone).
        sse_heartbeat: seconds of silence after which a stream sends a comment line,
            so proxies keep the connection open.
        spool_dir: where uploaded files wait for their job (default: a temporary folder).
    """

    kb: str = "kbs"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    cors_origins: tuple[str, ...] = ()
    max_request_bytes: int = 32 * _MIB
    rate_limit: float = 600.0
    rate_burst: int | None = None
    sync_roots: tuple[Path, ...] = ()
    default_k: int = 4
    job_workers: int = 2
    job_heartbeat: float = 5.0
    job_stale_after: float = 60.0
    sse_heartbeat: float = 10.0
    spool_dir: Path | None = field(default=None)

    def __post_init__(self) -> None:
        positive = {
            "port": self.port,
            "workers": self.workers,
            "max_request_bytes": self.max_request_bytes,
            "default_k": self.default_k,
            "job_workers": self.job_workers,
            "job_heartbeat": self.job_heartbeat,
            "job_stale_after": self.job_stale_after,
            "sse_heartbeat": self.sse_heartbeat,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigurationError(f"server setting {name} must be above 0, got {value}")
        if self.rate_limit < 0:
            raise ConfigurationError(f"rate_limit must be 0 (off) or more, got {self.rate_limit}")
        if self.rate_burst is not None and self.rate_burst < 1:
            raise ConfigurationError(f"rate_burst must be at least 1, got {self.rate_burst}")
        if self.job_stale_after <= self.job_heartbeat:
            raise ConfigurationError(
                f"job_stale_after ({self.job_stale_after} s) must be longer than "
                f"job_heartbeat ({self.job_heartbeat} s)"
            )
        if "*" in self.cors_origins:
            raise ConfigurationError(
                "cors_origins must list origins (https://app.example.com); '*' would let "
                "every web page call the API with a user's key"
            )

    @property
    def burst(self) -> int:
        """Requests a key may send at once."""
        return self.rate_burst if self.rate_burst is not None else max(1, int(self.rate_limit))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, origin: str = "settings") -> ServerSettings:
        """Settings from plain data (a parsed file); unknown names are an error."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for raw, value in data.items():
            name = raw.replace("-", "_")
            if name not in known:
                raise ConfigurationError(
                    f"{origin}: unknown server setting {raw!r}; known: {', '.join(sorted(known))}"
                )
            values[name] = value
        return cls().updated(values, origin=origin)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ServerSettings:
        """Settings from a ``.toml`` or ``.json`` file."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"could not read the server config {path}: {exc}") from exc
        try:
            data = json.loads(raw) if path.suffix.lower() == ".json" else _toml(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{path} is not valid {path.suffix[1:]}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigurationError(f"{path} must hold a table of settings")
        return cls.from_mapping(data, origin=str(path))

    def updated(self, values: Mapping[str, Any], *, origin: str = "settings") -> ServerSettings:
        """A copy with ``values`` (None values are skipped), types coerced and checked."""
        coerced: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            try:
                coerced[name] = _coerce(name, value)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"{origin}: {name}: {exc}") from exc
        return replace(self, **coerced)

    def to_json(self) -> str:
        """The settings as JSON (what worker processes receive in ``RAGKIT_SERVER_SETTINGS``)."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [str(v) for v in value]
            elif isinstance(value, Path):
                value = str(value)
            data[f.name] = value
        return json.dumps(data, sort_keys=True)


def _coerce(name: str, value: Any) -> Any:
    if name in ("cors_origins", "sync_roots"):
        items = [value] if isinstance(value, str) else list(value)
        if name == "sync_roots":
            return tuple(Path(v) for v in items)
        return tuple(str(v).rstrip("/") for v in items)
    if name == "spool_dir":
        return Path(value)
    if name in ("port", "workers", "max_request_bytes", "default_k", "job_workers", "rate_burst"):
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise TypeError(f"must be a whole number, got {value!r}")
        return int(value)
    if name in ("rate_limit", "job_heartbeat", "job_stale_after", "sse_heartbeat"):
        if isinstance(value, bool):
            raise TypeError(f"must be a number, got {value!r}")
        return float(value)
    return str(value)


def _toml(raw: bytes) -> Any:
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        from ragkit._deps import require

        tomllib = require("tomli", extra="server", purpose="reading a TOML server config")
    return tomllib.loads(raw.decode("utf-8"))
