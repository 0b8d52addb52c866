"""One configuration file for the whole pipeline: ``ragkit.toml`` (or ``.yaml``, ``.json``).

The file is read once, at the edge, into a :class:`RagkitConfig`; every key is checked
then, and an error names the file, the table and the key. Secrets never come from the
file: a key such as ``api_key``, ``password`` or ``token`` is refused with the name of the
environment variable to set instead. ::

    # ragkit.toml
    kb = "./kb"                      # a folder, postgresql://user@host/db?kb=NAME or
                                     # milvus://host:port?collection=NAME
    store = "chroma"                 # for a folder: chroma, faiss or memory
    verify = true

    [embedder]                       # SentenceTransformerEmbedder (or kind = "onnx")
    model = "sentence-transformers/all-MiniLM-L6-v2"

    [chunker]                        # RecursiveChunker
    chunk_size = 160
    chunk_overlap = 24

    [loader]
    pdf_tables = true                # PdfLoader(tables=True), extra "tables"

    [retrieval]
    mode = "hybrid"                  # hybrid, dense or keyword
    k = 4
    fetch_k = 16

    [reranker]
    kind = "cross-encoder"           # cross-encoder, mmr, bm25 or query-likelihood
    model = "cross-encoder/ms-marco-MiniLM-L-6-v2"

    [generator]
    kind = "openai"                  # extractive, llama-cpp, openai or transformers
    model = "gpt-4o-mini"
    api_key_env = "OPENAI_API_KEY"   # the variable holding the key (this is the default)

    [server]                         # ragkit serve (ServerSettings)
    port = 8000

The flat keys of ``ragkit eval --config`` files (``chunk_size``, ``embedder = "name"``,
``retrieval = "dense"``, ``keyword_scope``, ...) are accepted too.

Example:
    >>> config = RagkitConfig.from_mapping({"kb": "./kb", "chunker": {"chunk_size": 200}})
    >>> config.chunker
    {'chunk_size': 200}
    >>> rag = config.rag()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit._config_checks import (
    check_args,
    check_kb,
    check_types,
    construct,
    embedder_class,
    generator_class,
    only_keys,
    plain,
    refuse_secrets,
    reranker_class,
    table_of,
)
from ragkit.errors import ConfigurationError

if TYPE_CHECKING:
    from ragkit.protocols import Embedder, Generator, Reranker
    from ragkit.rag import RAG
    from ragkit.server.settings import ServerSettings

__all__ = ["CHUNKER_KEYS", "RagkitConfig", "load_config", "load_mapping"]

#: Keys of the ``[chunker]`` table (also accepted at the top level, as eval configs have).
CHUNKER_KEYS = ("chunk_size", "chunk_overlap", "length", "encoding", "markdown", "keep_separator")
#: Plain RAG arguments a file may set at the top level.
_TOP_LEVEL = ("kb", "tenant", "store", "cache", "verify", "k", "fetch_k", "keyword_scope")
_TABLES = ("embedder", "chunker", "loader", "retrieval", "reranker", "generator", "server")
_HINTS = {
    "path": " (the kb is named by kb = ... or --kb)",
    "retriever": " (it takes a component, which a file cannot hold; see [retrieval])",
}
_RETRIEVAL_KEYS = ("mode", "keyword_scope", "k", "fetch_k")
_LOADER_KEYS = ("pdf_tables",)


def load_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file into a dict of settings.

    Raises:
        ConfigurationError: the file cannot be read or parsed, or is not a table.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml", ".yaml", ".yml"):
        raise ConfigurationError(f"config file {path} must end in .json or .toml (or .yaml)")
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"config file {path} cannot be read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"config file {path} is not valid: {exc}") from exc
    try:
        data = _parser(suffix, path)(raw)
    except ValueError as exc:  # JSONDecodeError, TOMLDecodeError
        raise ConfigurationError(f"config file {path} is not valid: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError is no ValueError
        if type(exc).__module__.startswith("yaml"):
            raise ConfigurationError(f"config file {path} is not valid: {exc}") from exc
        raise
    if not isinstance(data, dict):
        raise ConfigurationError(f"config file {path} must hold an object of settings")
    return data


def _parser(suffix: str, path: Path) -> Callable[[str], Any]:
    if suffix == ".json":
        return json.loads
    if suffix in (".yaml", ".yml"):
        from ragkit._deps import require

        yaml = require("yaml", extra="yaml", purpose=f"reading {path}", package="pyyaml")
        return yaml.safe_load  # type: ignore[no-any-return]
    import importlib

    try:
        tomllib = importlib.import_module("tomllib")
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            tomllib = importlib.import_module("tomli")
        except ModuleNotFoundError as exc:
            raise ConfigurationError(
                f"{path}: reading TOML needs Python 3.11+ or `pip install tomli`; "
                "or write the config as JSON"
            ) from exc
    loads: Callable[[str], Any] = tomllib.loads
    return loads


#: Kept for ``ragkit.cli.eval.load_config``'s callers.
load_config = load_mapping


@dataclass(frozen=True)
class RagkitConfig:
    """A checked pipeline configuration; builds the :class:`~ragkit.RAG` it describes.

    Attributes:
        kb: where the knowledge base lives (folder or URL), or None.
        options: plain ``RAG`` arguments (store, tenant, verify, k, fetch_k, retrieval, ...).
        embedder: arguments of the embedder, with ``kind``; empty for the default.
        chunker: RecursiveChunker arguments; empty for the default.
        loader: loader settings (``pdf_tables``).
        reranker: reranker arguments with ``kind``; empty for none.
        generator: generator arguments with ``kind``; empty for the default (extractive).
        server: ``ragkit serve`` settings (:class:`~ragkit.server.settings.ServerSettings`).
        origin: the file it came from, for messages.
    """

    kb: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    embedder: dict[str, Any] = field(default_factory=dict)
    chunker: dict[str, Any] = field(default_factory=dict)
    loader: dict[str, Any] = field(default_factory=dict)
    reranker: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    origin: str = "config"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RagkitConfig:
        """Read and check ``path`` (TOML, YAML or JSON)."""
        return cls.from_mapping(load_mapping(path), origin=str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, origin: str = "config") -> RagkitConfig:
        """Check plain settings (a parsed file) and keep them.

        Raises:
            ConfigurationError: an unknown key, a value of the wrong type, or a secret;
                the message names the key.
        """
        refuse_secrets(data, origin, ())
        settings = dict(data)
        tables: dict[str, dict[str, Any]] = {name: {} for name in _TABLES}
        options: dict[str, Any] = {}
        for key in CHUNKER_KEYS:  # eval configs' flat chunker keys
            if key in settings:
                tables["chunker"][key] = settings.pop(key)
        retrieval = settings.pop("retrieval", None)
        if isinstance(retrieval, str):
            tables["retrieval"]["mode"] = retrieval
        elif retrieval is not None:
            tables["retrieval"] = table_of(retrieval, origin, "retrieval")
        embedder = settings.pop("embedder", None)
        if isinstance(embedder, str):
            tables["embedder"]["model"] = embedder
        elif embedder is not None:
            tables["embedder"] = table_of(embedder, origin, "embedder")
        for name in _TABLES:
            if name in settings:
                tables[name].update(table_of(settings.pop(name), origin, name))
        for key, value in settings.items():
            if key not in _TOP_LEVEL:
                known = sorted({*_TOP_LEVEL, *_TABLES, "retrieval", *CHUNKER_KEYS})
                hint = _HINTS.get(key, "")
                raise ConfigurationError(
                    f"{origin}: unknown setting {key!r}{hint}; known: {', '.join(known)}"
                )
            if not plain(value):
                raise ConfigurationError(
                    f"{origin}: {key} must be a plain value (text, number, true/false), "
                    f"got {value!r}"
                )
            options[key] = value
        kb = options.pop("kb", None)
        if kb is not None:
            kb = check_kb(kb, origin)
        only_keys(tables["retrieval"], _RETRIEVAL_KEYS, origin, "retrieval")
        only_keys(tables["loader"], _LOADER_KEYS, origin, "loader")
        retrieval_table = dict(tables["retrieval"])
        if "mode" in retrieval_table:
            options["retrieval"] = retrieval_table.pop("mode")
        options.update(retrieval_table)
        config = cls(
            kb=kb,
            options=options,
            embedder=tables["embedder"],
            chunker=tables["chunker"],
            loader=tables["loader"],
            reranker=tables["reranker"],
            generator=tables["generator"],
            server=tables["server"],
            origin=origin,
        )
        config._check()
        return config

    # -- checking -----------------------------------------------------------------------

    def _check(self) -> None:
        """Check every table against the signature of the class it configures."""
        from ragkit._build import check_retrieval

        check_types(self.options, _RAG_TYPES, self.origin, "")
        if "retrieval" in self.options:
            try:
                check_retrieval(self.options["retrieval"])
            except ConfigurationError as exc:
                raise ConfigurationError(f"{self.origin}: [retrieval] mode: {exc}") from exc
        if self.embedder:
            check_args(embedder_class(self.embedder, self.origin), self.embedder, self.origin,
                        "embedder")  # fmt: skip
        if self.chunker:
            from ragkit.chunking import RecursiveChunker

            check_args(RecursiveChunker, self.chunker, self.origin, "chunker")
        if self.reranker:
            cls, _ = reranker_class(self.reranker, self.origin)
            check_args(cls, self.reranker, self.origin, "reranker", skip=("embedder", "tokenizer"))
        if self.generator:
            cls = generator_class(self.generator, self.origin)
            check_args(cls, self.generator, self.origin, "generator",
                        skip=("embedder", "client", "api_key"), extra=("api_key_env",))  # fmt: skip
        if self.loader and not isinstance(self.loader.get("pdf_tables", False), bool):
            raise ConfigurationError(f"{self.origin}: [loader] pdf_tables must be true or false")
        if self.server:
            self.server_settings()  # ServerSettings checks its own keys

    # -- building -----------------------------------------------------------------------

    def rag_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~ragkit.RAG` (components built), without the kb."""
        kwargs: dict[str, Any] = dict(self.options)
        embedder = self.build_embedder()
        if embedder is not None:
            kwargs["embedder"] = embedder
        if self.chunker:
            from ragkit.chunking import RecursiveChunker

            kwargs["chunker"] = construct(RecursiveChunker, self.chunker, self.origin, "chunker")
        if self.loader.get("pdf_tables"):
            from ragkit.loaders import AutoLoader, PdfLoader

            kwargs["loader"] = AutoLoader({"pdf": PdfLoader(tables=True)})
        if self.reranker:
            kwargs["reranker"] = self.build_reranker(embedder)
        if self.generator:
            kwargs["generator"] = self.build_generator(embedder)
        return kwargs

    def rag(self, path: Any = None, **overrides: Any) -> RAG:
        """Open the :class:`~ragkit.RAG` this configuration describes.

        Args:
            path: the kb (folder, URL or backend settings); default: the file's ``kb``.
            overrides: ``RAG`` arguments that win over the file's (None values ignored).
        """
        from ragkit.rag import RAG

        kwargs = self.rag_kwargs()
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return RAG(path if path is not None else self.kb, **kwargs)

    def build_embedder(self) -> Embedder | None:
        """The configured embedder, or None for RAG's default."""
        if not self.embedder:
            return None
        cls = embedder_class(self.embedder, self.origin)
        args = {k: v for k, v in self.embedder.items() if k != "kind"}
        return construct(cls, args, self.origin, "embedder")  # type: ignore[no-any-return]

    def build_reranker(self, embedder: Embedder | None = None) -> Reranker | None:
        """The configured reranker, or None; ``mmr`` uses ``embedder`` (default MiniLM)."""
        if not self.reranker:
            return None
        cls, kind = reranker_class(self.reranker, self.origin)
        args = {k: v for k, v in self.reranker.items() if k != "kind"}
        if kind == "mmr":
            if embedder is None:
                from ragkit.embeddings import SentenceTransformerEmbedder

                embedder = SentenceTransformerEmbedder()
            args["embedder"] = embedder
        return construct(cls, args, self.origin, "reranker")  # type: ignore[no-any-return]

    def build_generator(self, embedder: Embedder | None = None) -> Generator | None:
        """The configured generator, or None for RAG's default (extractive)."""
        if not self.generator:
            return None
        cls = generator_class(self.generator, self.origin)
        args = {k: v for k, v in self.generator.items() if k not in ("kind", "api_key_env")}
        kind = self.generator.get("kind", "extractive")
        if kind == "extractive":
            from ragkit._build import sentence_embedder
            from ragkit.embeddings import SentenceTransformerEmbedder

            args["embedder"] = sentence_embedder(embedder or SentenceTransformerEmbedder())
        env = self.generator.get("api_key_env")
        if env is not None:
            if not os.environ.get(env):
                raise ConfigurationError(
                    f"{self.origin}: [generator] api_key_env names {env!r}, which is not set; "
                    f"export {env}=... before running"
                )
            args["api_key"] = os.environ[env]
        return construct(cls, args, self.origin, "generator")  # type: ignore[no-any-return]

    def server_settings(self, **overrides: Any) -> ServerSettings:
        """``ragkit serve``'s settings: the ``[server]`` table, ``kb`` from the top level."""
        from ragkit.server.settings import ServerSettings

        data = {"kb": self.kb} if self.kb is not None else {}
        data.update(self.server)
        settings = ServerSettings.from_mapping(data, origin=f"{self.origin}: [server]")
        return settings.updated(overrides, origin="the command line")


# -- helpers ------------------------------------------------------------------------------

_RAG_TYPES: dict[str, tuple[type, ...]] = {
    "tenant": (str,),
    "store": (str,),
    "cache": (bool,),
    "verify": (bool,),
    "k": (int,),
    "fetch_k": (int,),
    "keyword_scope": (str,),
    "retrieval": (str,),
}
