"""Write the API's OpenAPI 3.1 schema: ``python -m ragkit.server.openapi docs/openapi.json``.

The schema does not depend on settings; it is made from an app over an empty
temporary catalog.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "schema"]


def schema() -> dict[str, Any]:
    """The OpenAPI document of :func:`~ragkit.server.app.create_app`."""
    from ragkit.backends.local_catalog import LocalCatalog
    from ragkit.server.app import create_app
    from ragkit.server.settings import ServerSettings

    with tempfile.TemporaryDirectory() as root:
        catalog = LocalCatalog(Path(root))
        try:
            app = create_app(ServerSettings(kb=root), catalog=catalog)
            return app.openapi()
        finally:
            catalog.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schema to the file named by the first argument (stdout without one)."""
    args = list(sys.argv[1:] if argv is None else argv)
    text = json.dumps(schema(), indent=2, sort_keys=True) + "\n"
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
