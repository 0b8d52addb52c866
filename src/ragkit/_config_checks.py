"""The checks behind :class:`ragkit.config.RagkitConfig`: every key of a settings file is
checked against the component it configures, and each error names the file, the table
and the key. Secrets are refused with the environment variable that should hold them."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ragkit.errors import ConfigurationError

__all__ = [
    "check_args",
    "check_kb",
    "check_types",
    "construct",
    "embedder_class",
    "generator_class",
    "kind_of",
    "only_keys",
    "plain",
    "refuse_secrets",
    "reranker_class",
    "table_of",
    "where",
]

#: A key that holds a secret, and the environment variable that should hold it instead.
_SECRET = re.compile(r"(?:^|_)(?:api_?key|password|passwd|secret|token|credentials?)$", re.I)
_SECRET_ENV = {
    "generator": "OPENAI_API_KEY (or the variable named by api_key_env)",
    "kb": "PGPASSWORD for PostgreSQL, MILVUS_TOKEN for Milvus",
    "server": "the API keys of `ragkit keys create`, kept hashed in the catalog",
}


def plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def where(table: str) -> str:
    return f"[{table}] " if table else ""


def table_of(value: Any, origin: str, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{origin}: {name} must be a table of settings, got {value!r}")
    return dict(value)


def only_keys(table: Mapping[str, Any], keys: tuple[str, ...], origin: str, name: str) -> None:
    for key in table:
        if key not in keys:
            raise ConfigurationError(
                f"{origin}: [{name}] unknown key {key!r}; known: {', '.join(keys)}"
            )


def refuse_secrets(data: Mapping[str, Any], origin: str, path: tuple[str, ...]) -> None:
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
            refuse_secrets(value, origin, here)


def check_kb(kb: Any, origin: str) -> str:
    if not isinstance(kb, str) or not kb:
        raise ConfigurationError(f"{origin}: kb must be a folder or a URL, got {kb!r}")
    if "://" in kb and urlsplit(kb).password:
        raise ConfigurationError(
            f"{origin}: kb: the URL holds a password; remove it and set it in the "
            f"environment instead: {_SECRET_ENV['kb']}"
        )
    return kb


def check_types(
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
                f"{origin}: {where(table)}{key} must be {names}, got {value!r}"
            )


def check_args(
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
        if not plain(value) and not isinstance(value, Mapping):
            raise ConfigurationError(f"{origin}: [{table}] {key} must be a plain value")
        default = parameters[key].default
        if isinstance(default, bool):
            types[key] = (bool,)
        elif isinstance(default, (int, float)):
            types[key] = (int, float) if isinstance(default, float) else (int,)
        elif isinstance(default, str):
            types[key] = (str,)
    check_types(args, types, origin, table)


def construct(cls: Callable[..., Any], args: Mapping[str, Any], origin: str, table: str) -> Any:
    try:
        return cls(**args)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{origin}: [{table}] {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{origin}: [{table}] {exc}") from exc


def kind_of(table: Mapping[str, Any], default: str, kinds: tuple[str, ...], origin: str,
          name: str) -> str:  # fmt: skip
    kind = table.get("kind", default)
    if kind not in kinds:
        raise ConfigurationError(
            f"{origin}: [{name}] kind must be one of {', '.join(kinds)}; got {kind!r}"
        )
    return str(kind)


def embedder_class(table: Mapping[str, Any], origin: str) -> Callable[..., Any]:
    kind = kind_of(table, "sentence-transformers", ("sentence-transformers", "onnx"), origin,
                 "embedder")  # fmt: skip
    from ragkit import embeddings

    return embeddings.OnnxEmbedder if kind == "onnx" else embeddings.SentenceTransformerEmbedder


def reranker_class(table: Mapping[str, Any], origin: str) -> tuple[Callable[..., Any], str]:
    kinds = ("cross-encoder", "mmr", "bm25", "query-likelihood")
    if "kind" not in table:
        raise ConfigurationError(f"{origin}: [reranker] needs a kind: {', '.join(kinds)}")
    kind = kind_of(table, "", kinds, origin, "reranker")
    from ragkit import reranking

    classes = {
        "cross-encoder": reranking.CrossEncoderReranker,
        "mmr": reranking.MMRReranker,
        "bm25": reranking.BM25Reranker,
        "query-likelihood": reranking.QueryLikelihoodReranker,
    }
    return classes[kind], kind


def generator_class(table: Mapping[str, Any], origin: str) -> Callable[..., Any]:
    kinds = ("extractive", "llama-cpp", "openai", "transformers")
    kind = kind_of(table, "extractive", kinds, origin, "generator")
    from ragkit import generation

    classes: dict[str, Callable[..., Any]] = {
        "extractive": generation.ExtractiveGenerator,
        "llama-cpp": generation.LlamaCppGenerator,
        "openai": generation.OpenAIGenerator,
        "transformers": generation.TransformersGenerator,
    }
    return classes[kind]
