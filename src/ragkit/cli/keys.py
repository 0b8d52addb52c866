"""``ragkit keys create|list|revoke``: API keys of a server, kept (hashed) with its kbs."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ragkit.cli._options import add_config, kb_of, load

__all__ = ["add_keys_parser", "run_keys"]


def add_keys_parser(sub: Any, kb_help: str) -> None:
    """Add ``keys`` and its actions to the ``ragkit`` sub-command parser ``sub``."""
    keys = sub.add_parser("keys", help="create, list and revoke API keys of a server")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key and print it (shown once)")
    create.add_argument("--kb", help=kb_help)
    add_config(create)
    create.add_argument("--tenant", required=True, help="whose kbs the key reaches")
    create.add_argument(
        "--scopes", default="read", help="comma-separated: read, write, admin (default read)"
    )
    create.add_argument("--name", default="", help="a label for people")
    listing = actions.add_parser("list", help="list keys (ids, never secrets)")
    listing.add_argument("--kb", help=kb_help)
    add_config(listing)
    listing.add_argument("--tenant", help="only this tenant's keys")
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("--kb", help=kb_help)
    add_config(revoke)
    revoke.add_argument("id", help="the key's id (the 12 hex digits after rk_)")


def run_keys(args: argparse.Namespace) -> int:
    """Run ``ragkit keys <action>``."""
    from ragkit.backends import open_catalog
    from ragkit.backends.keys import create_key

    # A config file's [server] kb, else its kb: the engine whose keys these are.
    config = load(args)
    kb = args.kb or (config.server.get("kb") if config is not None else None)
    catalog = open_catalog(kb_of(argparse.Namespace(kb=kb), config))
    try:
        if args.action == "create":
            scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
            key, secret = create_key(catalog, args.tenant, scopes, args.name)
            print(secret)
            print(
                f"(key {key.id} for tenant {key.tenant}, scopes {','.join(key.scopes)}; "
                "shown once: store it now)",
                file=sys.stderr,
            )
            return 0
        if args.action == "list":
            for key in catalog.list_keys(args.tenant):
                created = time.strftime("%Y-%m-%d %H:%M", time.localtime(key.created))
                state = "revoked" if key.revoked else "active"
                print(f"{key.id}  {key.tenant:<20} {','.join(key.scopes):<16} {state:<8} "
                      f"{created}  {key.name}")  # fmt: skip
            return 0
        if not catalog.revoke_key(args.id.removeprefix("rk_")):
            print(f"ragkit: no key has the id {args.id}", file=sys.stderr)
            return 1
        print(f"revoked {args.id}")
        return 0
    finally:
        catalog.close()
