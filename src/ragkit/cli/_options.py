"""What every ``ragkit`` command shares: ``--config`` (a :mod:`ragkit.config` file) and the
kb it names, with flags that win over the file."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragkit.config import RagkitConfig
    from ragkit.rag import RAG

__all__ = ["CONFIG_HELP", "add_config", "add_precision", "kb_of", "load", "open_rag"]

CONFIG_HELP = (
    "ragkit.toml (or .yaml, .json) describing the pipeline and the kb; flags given on "
    "the command line win over it (see docs/configuration.md)"
)


def add_config(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` to ``parser``."""
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)


def add_precision(parser: argparse.ArgumentParser) -> None:
    """Add a training command's ``--precision`` (``TrainConfig`` / ``LoraSettings``)."""
    parser.add_argument(
        "--precision",
        choices=("auto", "bfloat16", "float32"),
        default="auto",
        help="bfloat16 mixed precision (auto: when the CPU multiplies bfloat16 natively)",
    )


def load(args: argparse.Namespace) -> RagkitConfig | None:
    """The checked ``--config`` file, or None without one."""
    path = getattr(args, "config", None)
    if not path:
        return None
    from ragkit.config import RagkitConfig

    return RagkitConfig.from_file(path)


def kb_of(args: argparse.Namespace, config: RagkitConfig | None) -> str:
    """``--kb``, else the config file's ``kb``.

    Raises:
        ConfigurationError: neither names a kb.
    """
    from ragkit.errors import ConfigurationError

    kb = getattr(args, "kb", None) or (config.kb if config is not None else None)
    if not kb:
        raise ConfigurationError("name the knowledge base: --kb, or kb = ... in a --config file")
    return str(kb)


def open_rag(args: argparse.Namespace, **overrides: Any) -> RAG:
    """The RAG of ``--config`` (or the defaults) on the kb of :func:`kb_of`; ``overrides``
    that are not None win over the file."""
    config = load(args)
    kb = kb_of(args, config)
    if config is not None:
        return config.rag(kb, **overrides)
    from ragkit.rag import RAG

    return RAG(kb, **{k: v for k, v in overrides.items() if v is not None})
