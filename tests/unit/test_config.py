"""ragkit.toml / .yaml / .json: one file for the whole pipeline, checked key by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit import RAG
from ragkit.chunking import RecursiveChunker
from ragkit.config import RagkitConfig, load_mapping
from ragkit.errors import ConfigurationError
from ragkit.loaders import AutoLoader
from ragkit.reranking import BM25Reranker
from ragkit.testing import FakeEmbedder

FULL_TOML = """
kb = "{kb}"
store = "memory"
verify = false

[chunker]
chunk_size = 40
chunk_overlap = 5
length = "characters"

[loader]
pdf_tables = true

[retrieval]
mode = "keyword"
k = 2
fetch_k = 6

[reranker]
kind = "bm25"
weight = 0.3

[generator]
kind = "extractive"
max_sentences = 2

[server]
port = 9001
cors_origins = ["https://app.example.com"]
"""

FULL_YAML = """
kb: {kb}
store: memory
verify: false
chunker: {{chunk_size: 40, chunk_overlap: 5, length: characters}}
loader: {{pdf_tables: true}}
retrieval: {{mode: keyword, k: 2, fetch_k: 6}}
reranker: {{kind: bm25, weight: 0.3}}
generator: {{kind: extractive, max_sentences: 2}}
server: {{port: 9001, cors_origins: [https://app.example.com]}}
"""


@pytest.fixture
def fake_embedder(monkeypatch: pytest.MonkeyPatch) -> FakeEmbedder:
    fake = FakeEmbedder()
    monkeypatch.setattr("ragkit.embeddings.SentenceTransformerEmbedder", lambda *a, **kw: fake)
    return fake


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "text"), [("ragkit.toml", FULL_TOML), ("ragkit.yaml", FULL_YAML)])
def test_a_whole_pipeline_from_one_file(
    tmp_path: Path, fake_embedder: FakeEmbedder, name: str, text: str
) -> None:
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    kb = tmp_path / "kb"
    path = _write(tmp_path, name, text.format(kb=kb))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The default timeout is five seconds. Pools hold ten.\n")

    with RAG.from_config(path) as rag:
        assert rag.path == kb
        assert rag.store_name == "memory"
        assert rag.retrieval == "keyword"
        assert isinstance(rag.chunker, RecursiveChunker)
        assert (rag.chunker.chunk_size, rag.chunker.chunk_overlap) == (40, 5)
        assert isinstance(rag.indexer.loader, AutoLoader)
        assert rag.indexer.loader.loaders["pdf"].tables is True  # type: ignore[attr-defined]
        assert isinstance(rag.qa.reranker, BM25Reranker)
        assert rag.qa.reranker.weight == 0.3
        assert rag.qa.verifier is None
        assert (rag.qa.k, rag.qa.fetch_k) == (2, 6)
        assert rag.qa.generator.max_sentences == 2  # type: ignore[attr-defined]
        rag.add(docs)
        answer = rag.ask("What is the default timeout?")
    assert "five seconds" in answer.text
    settings = RagkitConfig.from_file(path).server_settings()
    assert (settings.kb, settings.port) == (str(kb), 9001)
    assert settings.cors_origins == ("https://app.example.com",)


def test_toml_yaml_and_json_read_the_same(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    toml = _write(tmp_path, "c.toml", 'kb = "x"\n[chunker]\nchunk_size = 64\n')
    yaml = _write(tmp_path, "c.yml", "kb: x\nchunker:\n  chunk_size: 64\n")
    json = _write(tmp_path, "c.json", '{"kb": "x", "chunker": {"chunk_size": 64}}')
    assert load_mapping(toml) == load_mapping(yaml) == load_mapping(json)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"colour": 1}, r"unknown setting 'colour'; known: .*kb"),
        ({"chunker": {"chunk_sise": 10}}, r"\[chunker\] unknown key 'chunk_sise' .*chunk_size"),
        ({"chunker": {"chunk_size": "big"}}, r"\[chunker\] chunk_size must be int, got 'big'"),
        ({"k": "4"}, r"k must be int, got '4'"),
        ({"verify": "yes"}, r"verify must be bool"),
        ({"retrieval": {"mode": "fuzzy"}}, r"\[retrieval\] mode: .*fuzzy"),
        ({"retrieval": {"top": 3}}, r"\[retrieval\] unknown key 'top'"),
        ({"reranker": {"model": "x"}}, r"\[reranker\] needs a kind"),
        ({"reranker": {"kind": "magic"}}, r"\[reranker\] kind must be one of"),
        (
            {"generator": {"kind": "openai", "temprature": 0}},
            r"\[generator\] unknown key 'temprature'",
        ),
        (
            {"generator": {"kind": "openai", "max_tokens": 1.5}},
            r"\[generator\] max_tokens must be int",
        ),
        ({"embedder": {"kind": "onnx", "device": "cuda"}}, r"\[embedder\] unknown key 'device'"),
        ({"loader": {"pdf_tables": "yes"}}, r"\[loader\] pdf_tables must be true or false"),
        ({"server": {"prot": 1}}, r"\[server\].*unknown server setting 'prot'"),
        ({"server": {"port": 0}}, r"port must be above 0"),
        ({"store": ["a"], "kb": "x"}, r"store must be str"),
    ],
)
def test_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RagkitConfig.from_mapping(data, origin="ragkit.toml")


@pytest.mark.parametrize(
    ("data", "where", "env"),
    [
        ({"generator": {"kind": "openai", "api_key": "sk-123"}}, r"\[generator\] api_key",
         "OPENAI_API_KEY"),
        ({"generator": {"kind": "openai", "headers": {"Authorization_token": "x"}}},
         r"\[generator.headers\] Authorization_token", "OPENAI_API_KEY"),
        ({"kb": "postgresql://me:hunter2@db/ragkit?kb=a"}, "kb: the URL holds a password",
         "PGPASSWORD"),
        ({"password": "x"}, "password", "environment"),
        ({"server": {"admin_token": "x"}}, r"\[server\] admin_token", "ragkit keys create"),
    ],
)  # fmt: skip
def test_secrets_are_refused_with_the_variable_to_use(
    data: dict[str, object], where: str, env: str
) -> None:
    with pytest.raises(ConfigurationError, match=where) as info:
        RagkitConfig.from_mapping(data, origin="ragkit.toml")
    assert env in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "sk-123" not in str(info.value)


def test_the_api_key_comes_from_the_variable_the_file_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("httpx")
    config = RagkitConfig.from_mapping(
        {"generator": {"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                       "api_key_env": "MY_LLM_KEY"}}
    )  # fmt: skip
    monkeypatch.delenv("MY_LLM_KEY", raising=False)
    with pytest.raises(ConfigurationError, match=r"MY_LLM_KEY.*not set"):
        config.build_generator(FakeEmbedder())
    monkeypatch.setenv("MY_LLM_KEY", "secret-from-env")
    generator = config.build_generator(FakeEmbedder())
    assert generator.api_key == "secret-from-env"  # type: ignore[union-attr]
    assert generator.model == "m"  # type: ignore[union-attr]


def test_eval_style_flat_keys_still_work() -> None:
    from ragkit.embeddings import SentenceTransformerEmbedder

    config = RagkitConfig.from_mapping(
        {"chunk_size": 64, "chunk_overlap": 8, "retrieval": "dense", "embedder": "some/model"}
    )
    assert config.chunker == {"chunk_size": 64, "chunk_overlap": 8}
    assert config.options == {"retrieval": "dense"}
    assert config.embedder == {"model": "some/model"}
    embedder = config.build_embedder()  # loads nothing until first used
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.model_id == "some/model"


def test_overrides_win_over_the_file(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    path = _write(tmp_path, "r.toml", 'store = "memory"\nk = 3\n')
    with RAG.from_config(path, kb=tmp_path / "kb2", k=7) as rag:
        assert rag.path == tmp_path / "kb2"
        assert rag.qa.k == 7


def test_yaml_without_pyyaml_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from ragkit.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "yaml", None)
    path = _write(tmp_path, "r.yaml", "k: 3\n")
    with pytest.raises(MissingDependencyError, match=r"ragkit\[yaml\]"):
        RagkitConfig.from_file(path)


def test_a_fine_tuned_local_generator_is_configured_by_its_class_arguments(
    tmp_path: Path,
) -> None:
    """[generator] for ragkit finetune's outputs: a merged GGUF or an adapter with
    llama.cpp, or a model folder and its adapter through transformers (nothing loads
    until the first answer)."""
    from ragkit.generation import LlamaCppGenerator, TransformersGenerator

    merged = tmp_path / "merged.gguf"
    merged.write_bytes(b"GGUF")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter.gguf").write_bytes(b"GGUF")
    (adapter / "adapter_config.json").write_text("{}")  # a peft adapter folder
    llama = RagkitConfig.from_mapping(
        {"generator": {"kind": "llama-cpp", "model_path": str(merged), "max_tokens": 64}}
    ).build_generator()
    assert isinstance(llama, LlamaCppGenerator)
    assert Path(llama.model_path) == merged
    assert llama.lora is None
    with_lora = RagkitConfig.from_mapping(
        {"generator": {"kind": "llama-cpp", "model_path": str(merged), "lora": str(adapter)}}
    ).build_generator()
    assert with_lora.lora == adapter / "adapter.gguf"  # type: ignore[union-attr]
    folder = tmp_path / "hf-model"
    folder.mkdir()
    hf = RagkitConfig.from_mapping(
        {"generator": {"kind": "transformers", "model": str(folder), "lora": str(adapter)}}
    ).build_generator()
    assert isinstance(hf, TransformersGenerator)
    with pytest.raises(ConfigurationError, match=r"\[generator\] model not found: models/none"):
        RagkitConfig.from_mapping(
            {"generator": {"kind": "transformers", "model": "models/none"}}
        ).build_generator()
    with pytest.raises(
        ConfigurationError, match=r"\[generator\] kind must be one of.*transformers"
    ):
        RagkitConfig.from_mapping({"generator": {"kind": "vllm"}})
