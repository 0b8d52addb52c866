"""ragkit.training.generator without a model: RAFT examples from SQuAD, their prompts and
JSONL, the LoRA precision names, and the refusal evaluation with the answering paragraph
removed.

The tests that build, train or load a model (the tiny Llama, the bundled SmolLM2 GGUF)
are in tests/integration/test_generator_finetune_real.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragkit.eval._squad_metric import contains_answer
from ragkit.generation.prompt import (
    DEFAULT_SYSTEM,
    DEFAULT_USER_TEMPLATE,
    REFUSAL,
    PromptBuilder,
)
from ragkit.training.generator.examples import (
    cited_quote,
    read_examples,
    squad_examples,
    write_examples,
)

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


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    data = []
    for title, paragraphs in ARTICLES.items():
        ps = []
        for i, context in enumerate(paragraphs):
            question, answer = QUESTIONS[(title, i)]
            start = context.find(answer)
            ps.append(
                {
                    "context": context,
                    "qas": [
                        {
                            "id": f"{title}-{i}",
                            "question": question,
                            "answers": [{"text": answer, "answer_start": start}],
                        }
                    ],
                }
            )
        data.append({"title": title, "paragraphs": ps})
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": data}), "utf-8")
    return path


def framed_builder() -> PromptBuilder:
    """LlamaCppGenerator's prompt (same system, template) counted without a model."""
    return PromptBuilder(
        DEFAULT_USER_TEMPLATE, system=DEFAULT_SYSTEM, context_window=4096, answer_tokens=256
    )


# --- step 1: examples ---------------------------------------------------------------


def test_cited_quote_is_the_sentence_holding_the_answer() -> None:
    text = "Owls hunt at night. Their hearing is very sharp."
    assert cited_quote(text, ["very sharp"], 2) == "Their hearing is very sharp. [2]"
    assert cited_quote(text, ["daylight"], 1) is None


def test_answer_examples_quote_and_cite_the_answering_passage(squad_file: Path) -> None:
    builder = framed_builder()
    examples = squad_examples(squad_file, builder, ks=(3,), refusal=0.0, seed=1)
    assert len(examples) == len(QUESTIONS)
    for example in examples:
        assert not example.refusal
        quote, marker = example.completion.rsplit(" [", 1)
        n = int(marker.rstrip("]"))
        # the cited passage is the n-th of the prompt and holds the quoted sentence
        assert f"[{n}] (squad:{example.document_id})\n" in example.prompt
        assert quote in example.prompt
        answer = next(a for q, a in QUESTIONS.values() if q == example.question)
        assert contains_answer(quote, [answer])
        assert len(example.contexts) == 3  # the passage among 2 distractors


def test_refusal_examples_have_no_answering_passage(squad_file: Path) -> None:
    examples = squad_examples(squad_file, framed_builder(), ks=(2,), refusal=1.0, seed=0)
    refusals = [e for e in examples if e.refusal]
    assert len(refusals) == len(QUESTIONS)
    for example in refusals:
        assert example.completion == REFUSAL
        answer = next(a for q, a in QUESTIONS.values() if q == example.question)
        assert f"(squad:{example.document_id})" not in example.prompt
        context = example.prompt.split("Context:", 1)[1].split("Question:", 1)[0]
        assert not contains_answer(context, [answer])


def test_prompt_is_the_builders_rendered_chat(squad_file: Path) -> None:
    builder = framed_builder()
    (example, *_rest) = squad_examples(squad_file, builder, ks=(1,), refusal=0.0)
    assert example.prompt.startswith("<|im_start|>system\n" + DEFAULT_SYSTEM)
    assert example.prompt.endswith(
        f"Question: {example.question}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "\n[1] (squad:" in example.prompt
    assert "\n[2] (" not in example.prompt


def test_examples_round_trip_through_jsonl(squad_file: Path, tmp_path: Path) -> None:
    examples = squad_examples(squad_file, framed_builder(), refusal=0.5)
    write_examples(examples, tmp_path / "ex.jsonl")
    assert read_examples(tmp_path / "ex.jsonl") == examples


# --- step 2: training ---------------------------------------------------------------


def test_an_unknown_lora_precision_is_refused() -> None:
    from ragkit.errors import ConfigurationError
    from ragkit.training.generator.lora import LoraSettings

    with pytest.raises(ConfigurationError, match="float16"):
        LoraSettings(precision="float16")


# --- evaluation: refusal with the answering paragraph removed -----------------------


def test_evaluate_removed_filters_out_the_questions_own_paragraph(squad_file: Path) -> None:
    from ragkit import RAG
    from ragkit.eval import SquadDataset
    from ragkit.eval.squad_removed import evaluate_removed
    from ragkit.testing import FakeEmbedder

    data = SquadDataset(squad_file)
    with RAG(store="memory", embedder=FakeEmbedder()) as rag:
        rag.add(data.documents())
        report = evaluate_removed(rag, data.questions(), k=3)
        for question in data.questions():
            kept = rag.retrieve(
                question.question, 6, {"source": {"$ne": f"squad:{question.document_id}"}}
            )
            assert all(h.chunk.document_id != question.document_id for h in kept)
    assert report.questions == len(QUESTIONS)
    # the extractive default answers from distractors (none holds the answer here), so
    # it refuses only when its relevance gate does: the rate counts only those questions
    counted = report.questions - report.answerable_elsewhere
    assert counted == len(QUESTIONS)
    assert report.refusal_rate == report.refused / counted
    assert [row[0] for row in report.per_question] == [q.id for q in data.questions()]
