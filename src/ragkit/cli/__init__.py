"""The ``ragkit`` command-line interface (``python -m ragkit.cli`` works too)."""

from ragkit.cli.main import main

__all__ = ["main"]
