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
    kind = "openai"                  # extractive, llama-cpp or openai
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

import inspect
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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
#: A key that holds a secret, and the environment variable that should hold it instead.
_SECRET = re.compile(r"(?:^|_)(?:api_?key|password|passwd|secret|token|credentials?)$", re.I)
_SECRET_ENV = {
    "generator": "OPENAI_API_KEY (or the variable named by api_key_env)",
    "kb": "PGPASSWORD for PostgreSQL, MILVUS_TOKEN for Milvus",
    "server": "the API keys of `ragkit keys create`, kept hashed in the catalog",
}


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
        _refuse_secrets(data, origin, ())
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
            tables["retrieval"] = _table(retrieval, origin, "retrieval")
        embedder = settings.pop("embedder", None)
        if isinstance(embedder, str):
            tables["embedder"]["model"] = embedder
        elif embedder is not None:
            tables["embedder"] = _table(embedder, origin, "embedder")
        for name in _TABLES:
            if name in settings:
                tables[name].update(_table(settings.pop(name), origin, name))
        for key, value in settings.items():
            if key not in _TOP_LEVEL:
                known = sorted({*_TOP_LEVEL, *_TABLES, "retrieval", *CHUNKER_KEYS})
                hint = _HINTS.get(key, "")
                raise ConfigurationError(
                    f"{origin}: unknown setting {key!r}{hint}; known: {', '.join(known)}"
                )
            if not _plain(value):
                raise ConfigurationError(
                    f"{origin}: {key} must be a plain value (text, number, true/false), "
                    f"got {value!r}"
                )
            options[key] = value
        kb = options.pop("kb", None)
        if kb is not None:
            kb = _check_kb(kb, origin)
        _only(tables["retrieval"], _RETRIEVAL_KEYS, origin, "retrieval")
        _only(tables["loader"], _LOADER_KEYS, origin, "loader")
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

        _check_types(self.options, _RAG_TYPES, self.origin, "")
        if "retrieval" in self.options:
            try:
                check_retrieval(self.options["retrieval"])
            except ConfigurationError as exc:
                raise ConfigurationError(f"{self.origin}: [retrieval] mode: {exc}") from exc
        if self.embedder:
            _check_args(_embedder_class(self.embedder, self.origin), self.embedder, self.origin,
                        "embedder")  # fmt: skip
        if self.chunker:
            from ragkit.chunking import RecursiveChunker

            _check_args(RecursiveChunker, self.chunker, self.origin, "chunker")
        if self.reranker:
            cls, _ = _reranker_class(self.reranker, self.origin)
            _check_args(cls, self.reranker, self.origin, "reranker", skip=("embedder", "tokenizer"))
        if self.generator:
            cls = _generator_class(self.generator, self.origin)
            _check_args(cls, self.generator, self.origin, "generator",
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

            kwargs["chunker"] = _construct(RecursiveChunker, self.chunker, self.origin, "chunker")
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
        cls = _embedder_class(self.embedder, self.origin)
        args = {k: v for k, v in self.embedder.items() if k != "kind"}
        return _construct(cls, args, self.origin, "embedder")  # type: ignore[no-any-return]

    def build_reranker(self, embedder: Embedder | None = None) -> Reranker | None:
        """The configured reranker, or None; ``mmr`` uses ``embedder`` (default MiniLM)."""
        if not self.reranker:
            return None
        cls, kind = _reranker_class(self.reranker, self.origin)
        args = {k: v for k, v in self.reranker.items() if k != "kind"}
        if kind == "mmr":
            if embedder is None:
                from ragkit.embeddings import SentenceTransformerEmbedder

                embedder = SentenceTransformerEmbedder()
            args["embedder"] = embedder
        return _construct(cls, args, self.origin, "reranker")  # type: ignore[no-any-return]

    def build_generator(self, embedder: Embedder | None = None) -> Generator | None:
        """The configured generator, or None for RAG's default (extractive)."""
        if not self.generator:
            return None
        cls = _generator_class(self.generator, self.origin)
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
        return _construct(cls, args, self.origin, "generator")  # type: ignore[no-any-return]

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


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _where(table: str) -> str:
    return f"[{table}] " if table else ""


def _table(value: Any, origin: str, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{origin}: {name} must be a table of settings, got {value!r}")
    return dict(value)


def _only(table: Mapping[str, Any], keys: tuple[str, ...], origin: str, name: str) -> None:
    for key in table:
        if key not in keys:
            raise ConfigurationError(
                f"{origin}: [{name}] unknown key {key!r}; known: {', '.join(keys)}"
            )


def _refuse_secrets(data: Mapping[str, Any], origin: str, path: tuple[str, ...]) -> None:
    for key, value in data.items():
        here = (*path, str(key))
        if _SECRET.search(str(key)):
            table = path[0] if path else str(key)
            hint = _SECRET_ENV.get(table, "an environment variable read by your own code")
            where = f"[{'.'.join(path)}] {key}" if path else str(key)
            raise ConfigurationError(
                f"{origin}: {where}: secrets are not read from configuration files (they "
                f"end up in version control); set it in the environment instead: {hint}"
            )
        if isinstance(value, Mapping):
            _refuse_secrets(value, origin, here)


def _check_kb(kb: Any, origin: str) -> str:
    if not isinstance(kb, str) or not kb:
        raise ConfigurationError(f"{origin}: kb must be a folder or a URL, got {kb!r}")
    if "://" in kb and urlsplit(kb).password:
        raise ConfigurationError(
            f"{origin}: kb: the URL holds a password; remove it and set it in the "
            f"environment instead: {_SECRET_ENV['kb']}"
        )
    return kb


def _check_types(
    values: Mapping[str, Any], types: Mapping[str, tuple[type, ...]], origin: str, table: str
) -> None:
    for key, value in values.items():
        wanted = types.get(key)
        if wanted is None or value is None:
            continue
        if bool not in wanted and isinstance(value, bool):
            ok = False
        else:
            ok = isinstance(value, wanted) or (float in wanted and isinstance(value, int))
        if not ok:
            names = " or ".join(t.__name__ for t in wanted)
            raise ConfigurationError(
                f"{origin}: {_where(table)}{key} must be {names}, got {value!r}"
            )


def _check_args(
    cls: Callable[..., Any],
    args: Mapping[str, Any],
    origin: str,
    table: str,
    *,
    skip: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
) -> None:
    """Every key of ``args`` names a parameter of ``cls`` that takes a plain value of the
    type of its default."""
    parameters = {
        name: p
        for name, p in inspect.signature(cls).parameters.items()
        if name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    known = sorted({*parameters, *extra, "kind"})
    types: dict[str, tuple[type, ...]] = {}
    for key, value in args.items():
        if key == "kind" or key in extra:
            continue
        if key not in parameters:
            raise ConfigurationError(
                f"{origin}: [{table}] unknown key {key!r} for {getattr(cls, '__name__', cls)}; "
                f"known: {', '.join(known)}"
            )
        if not _plain(value) and not isinstance(value, Mapping):
            raise ConfigurationError(f"{origin}: [{table}] {key} must be a plain value")
        default = parameters[key].default
        if isinstance(default, bool):
            types[key] = (bool,)
        elif isinstance(default, (int, float)):
            types[key] = (int, float) if isinstance(default, float) else (int,)
        elif isinstance(default, str):
            types[key] = (str,)
    _check_types(args, types, origin, table)


def _construct(cls: Callable[..., Any], args: Mapping[str, Any], origin: str, table: str) -> Any:
    try:
        return cls(**args)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{origin}: [{table}] {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{origin}: [{table}] {exc}") from exc


def _kind(table: Mapping[str, Any], default: str, kinds: tuple[str, ...], origin: str,
          name: str) -> str:  # fmt: skip
    kind = table.get("kind", default)
    if kind not in kinds:
        raise ConfigurationError(
            f"{origin}: [{name}] kind must be one of {', '.join(kinds)}; got {kind!r}"
        )
    return str(kind)


def _embedder_class(table: Mapping[str, Any], origin: str) -> Callable[..., Any]:
    kind = _kind(table, "sentence-transformers", ("sentence-transformers", "onnx"), origin,
                 "embedder")  # fmt: skip
    from ragkit import embeddings

    return embeddings.OnnxEmbedder if kind == "onnx" else embeddings.SentenceTransformerEmbedder


def _reranker_class(table: Mapping[str, Any], origin: str) -> tuple[Callable[..., Any], str]:
    kinds = ("cross-encoder", "mmr", "bm25", "query-likelihood")
    if "kind" not in table:
        raise ConfigurationError(f"{origin}: [reranker] needs a kind: {', '.join(kinds)}")
    kind = _kind(table, "", kinds, origin, "reranker")
    from ragkit import reranking

    classes = {
        "cross-encoder": reranking.CrossEncoderReranker,
        "mmr": reranking.MMRReranker,
        "bm25": reranking.BM25Reranker,
        "query-likelihood": reranking.QueryLikelihoodReranker,
    }
    return classes[kind], kind


def _generator_class(table: Mapping[str, Any], origin: str) -> Callable[..., Any]:
    kind = _kind(table, "extractive", ("extractive", "llama-cpp", "openai"), origin, "generator")
    from ragkit import generation

    classes: dict[str, Callable[..., Any]] = {
        "extractive": generation.ExtractiveGenerator,
        "llama-cpp": generation.LlamaCppGenerator,
        "openai": generation.OpenAIGenerator,
    }
    return classes[kind]
