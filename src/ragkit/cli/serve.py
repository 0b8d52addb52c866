"""``ragkit serve``: the HTTP API over every kb of a folder or database (uvicorn)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragkit.config import RagkitConfig

__all__ = ["add_serve_parser", "run_serve"]


def add_serve_parser(sub: Any, kb_help: str) -> None:
    """Add ``serve`` to the ``ragkit`` sub-command parser ``sub``."""
    serve = sub.add_parser("serve", help="serve the HTTP API (pip install 'ragkit[server]')")
    serve.add_argument("--kb", help=f"{kb_help}; a root folder of kbs (default: ./kbs)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (a folder allows 1)")
    serve.add_argument(
        "--config",
        help="ragkit.toml (or .yaml, .json): the [server] table and the pipeline every kb is "
        "opened with; a file of server settings only (the keys of [server]) works too",
    )
    serve.add_argument(
        "--cors-origin", action="append", dest="cors_origins", metavar="ORIGIN",
        help="an origin browsers may call from (repeatable; default: none)",
    )  # fmt: skip
    serve.add_argument(
        "--sync-root", action="append", dest="sync_roots", metavar="DIR",
        help="a server folder clients may sync from (repeatable; default: none)",
    )  # fmt: skip


def run_serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted."""
    from ragkit._deps import require
    from ragkit.backends import LocalSettings, parse_location
    from ragkit.errors import ConfigurationError
    from ragkit.server.settings import ServerSettings

    flags = {
        "kb": args.kb, "host": args.host, "port": args.port, "workers": args.workers,
        "cors_origins": args.cors_origins, "sync_roots": args.sync_roots,
    }  # fmt: skip
    config = _pipeline_config(args.config) if args.config else None
    if config is not None:
        settings = config.server_settings(**flags)
    else:
        base = ServerSettings.from_file(args.config) if args.config else ServerSettings()
        settings = base.updated(flags, origin="the command line")
    uvicorn = require("uvicorn", extra="server", purpose="ragkit serve")
    require("fastapi", extra="server", purpose="ragkit serve")
    if isinstance(parse_location(settings.kb), LocalSettings) and settings.workers > 1:
        raise ConfigurationError(
            f"{settings.kb} is a folder: serve it with one worker (its kbs are written by "
            "one process at a time); use PostgreSQL or Milvus for several"
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(f"ragkit: serving {settings.kb} on http://{settings.host}:{settings.port}",
          file=sys.stderr)  # fmt: skip
    if settings.workers > 1:
        from ragkit.server.app import CONFIG_ENV, SETTINGS_ENV

        if config is not None:  # every worker builds the file's pipeline itself
            os.environ[CONFIG_ENV] = os.path.abspath(args.config)
        os.environ[SETTINGS_ENV] = settings.to_json()
        uvicorn.run("ragkit.server.app:create_app_from_env", factory=True,
                    host=settings.host, port=settings.port, workers=settings.workers)  # fmt: skip
        return 0
    from ragkit.server.app import create_app

    opener = None
    if config is not None:
        pipeline = config

        def opener(info: Any) -> Any:
            return pipeline.rag(info.settings, tenant=info.tenant)

    uvicorn.run(create_app(settings, open_rag=opener), host=settings.host, port=settings.port)
    return 0


def _pipeline_config(path: str) -> RagkitConfig | None:
    """The ragkit.toml at ``path``, or None for a file of server settings only (the
    format ``ragkit serve --config`` read before ragkit.toml existed)."""
    from ragkit.config import RagkitConfig, load_mapping
    from ragkit.server.settings import ServerSettings

    data = load_mapping(path)
    server_keys = {f.replace("-", "_") for f in data} - {"kb"}
    if "server" not in data and server_keys <= set(ServerSettings.__dataclass_fields__):
        return None
    return RagkitConfig.from_mapping(data, origin=path)
