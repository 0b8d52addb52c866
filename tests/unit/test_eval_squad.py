"""SQuAD reading, the official answer metric, evaluate_answers and ``ragkit eval squad``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from ragkit import RAG, Answer, Chunk, Citation, ScoredChunk
from ragkit.cli import main
from ragkit.errors import ConfigurationError, LoaderError
from ragkit.eval import (
    AnswerReport,
    SquadDataset,
    SquadQuestion,
    contains_answer,
    evaluate_answers,
    exact_match,
    f1_score,
    normalize_answer,
    read_squad,
)
from ragkit.eval.squad import answer_text, sample_questions
from ragkit.protocols import Filters
from ragkit.testing import FakeEmbedder

SQUAD = {
    "version": "v2.0",
    "data": [
        {
            "title": "Volcanoes",
            "paragraphs": [
                {
                    "context": "Lava flows from erupting volcanoes in Iceland. "
                    "Hekla volcano erupted in 1947.",
                    "qas": [
                        {
                            "id": "v1",
                            "question": "Which volcano erupted in 1947?",
                            "answers": [{"text": "Hekla", "answer_start": 47}],
                        },
                        {
                            "id": "v2",
                            "question": "Where do lava flows from erupting volcanoes occur?",
                            "answers": [
                                {"text": "Iceland", "answer_start": 38},
                                {"text": "in Iceland", "answer_start": 35},
                            ],
                        },
                    ],
                },
                {"context": "   ", "qas": []},  # no text: skipped
            ],
        },
        {
            "title": "Penguins",
            "paragraphs": [
                {
                    "context": "Emperor penguins huddle together in the Antarctic winter.",
                    "qas": [
                        {
                            "id": "p1",
                            "question": "How do emperor penguins survive the Antarctic winter?",
                            "answers": [{"text": "huddle together", "answer_start": 17}],
                        },
                        {
                            "id": "p2",
                            "question": "What colour are the eggs of emperor penguins?",
                            "answers": [],
                            "is_impossible": True,
                        },
                        {"id": "p3", "question": "No answers and not impossible", "answers": []},
                    ],
                }
            ],
        },
    ],
}


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(SQUAD), encoding="utf-8")
    return path


# --- the official metric, hand-computed cases ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Denver Broncos", "denver broncos"),
        ("  Denver,   Broncos!! ", "denver broncos"),
        ("an apple a day", "apple day"),
        ("Theatre of the absurd", "theatre of absurd"),  # "the" inside a word stays
        ("U.S.", "us"),
        ("1,000 years", "1000 years"),
        ("A", ""),
    ],
)
def test_normalize_answer_follows_the_official_script(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match_takes_the_best_gold_answer() -> None:
    assert exact_match("the Broncos.", ["Denver Broncos", "Broncos"]) == 1.0
    assert exact_match("Denver", ["Denver Broncos"]) == 0.0
    assert exact_match("anything", []) == 0.0


def test_f1_is_token_overlap_against_the_best_gold_answer() -> None:
    # prediction "denver broncos won" vs gold "denver broncos": p = 2/3, r = 1.
    assert f1_score("The Denver Broncos won", ["Denver Broncos"]) == pytest.approx(0.8)
    # The second answer matches exactly.
    assert f1_score("Broncos", ["Denver Broncos", "the Broncos"]) == 1.0
    assert f1_score("Carolina Panthers", ["Denver Broncos"]) == 0.0
    # Repeated tokens count once per occurrence in both (Counter intersection).
    assert f1_score("x y y", ["y y z"]) == pytest.approx(2 / 3)
    # "a" is an article, so it is dropped: "y y" vs "y y z" gives p = 1, r = 2/3.
    assert f1_score("a y y", ["y y z"]) == pytest.approx(0.8)


def test_contains_answer_matches_whole_normalized_words() -> None:
    assert contains_answer("It was won by the Denver Broncos [1].", ["Denver Broncos"])
    assert contains_answer("in 1947, Hekla", ["1947"])
    assert not contains_answer("10 years later", ["1"])
    assert not contains_answer("anything", ["the"])  # normalizes to nothing


def test_answer_text_drops_markers() -> None:
    answer = Answer(question="q", text="Hekla erupted [1]. It is in Iceland [2][3].")
    assert answer_text(answer) == "Hekla erupted. It is in Iceland."


# --- reading ---------------------------------------------------------------------------------


def test_read_squad_makes_a_document_per_paragraph(squad_file: Path) -> None:
    documents, questions = read_squad(squad_file)
    assert [d.id for d in documents] == ["Volcanoes/0", "Penguins/0"]
    assert documents[0].source == "squad:Volcanoes/0"
    assert documents[0].metadata == {"title": "Volcanoes"}
    assert documents[1].text == SQUAD["data"][1]["paragraphs"][0]["context"]  # type: ignore[index]
    assert [q.id for q in questions] == ["v1", "v2", "p1", "p2"]  # p3 has no answer
    assert questions[1] == SquadQuestion(
        id="v2",
        question="Where do lava flows from erupting volcanoes occur?",
        answers=("Iceland", "in Iceland"),
        document_id="Volcanoes/0",
        title="Volcanoes",
    )
    assert questions[3].is_impossible
    assert questions[3].answers == ()


def test_dataset_reads_a_file_or_a_folder(squad_file: Path, tmp_path: Path) -> None:
    by_file = SquadDataset(squad_file)
    by_folder = SquadDataset(tmp_path)
    assert by_file.name == "tiny-squad"
    assert by_folder.files == (squad_file,)
    assert by_folder.questions() == by_file.questions()
    with pytest.raises(ConfigurationError, match="SQuAD JSON"):
        SquadDataset(tmp_path / "empty-folder-that-does-not-exist")


def test_read_squad_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(LoaderError, match=r"bad\.json"):
        read_squad(bad)
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(LoaderError, match="SQuAD"):
        read_squad(bad)


def test_sample_is_seeded_and_keeps_file_order(squad_file: Path) -> None:
    questions = SquadDataset(squad_file).questions()
    first = sample_questions(questions, 2, seed=3)
    assert first == sample_questions(questions, 2, seed=3)
    assert len(first) == 2
    assert [questions.index(q) for q in first] == sorted(questions.index(q) for q in first)
    assert sample_questions(questions, None) == questions
    assert sample_questions(questions, 99) == questions


# --- evaluate_answers --------------------------------------------------------------------


def test_end_to_end_on_a_tiny_file(squad_file: Path) -> None:
    data = SquadDataset(squad_file)
    with RAG(store="memory", embedder=FakeEmbedder()) as rag:
        rag.add(data.documents())
        report = evaluate_answers(rag, data.questions(), k=2)
    assert isinstance(report, AnswerReport)
    assert (report.questions, report.answerable, report.impossible) == (4, 3, 1)
    # Two paragraphs only: the gold one is always among the best two.
    assert report.gold_top_k == 1.0
    assert report.gold_top1 == 1.0
    by_id = {r.id: r for r in report.per_question}
    # The extractive answer quotes the gold paragraph's sentence.
    assert by_id["v1"].contains_gold
    assert "Hekla" in by_id["v1"].answer
    assert by_id["v1"].citations >= 1
    assert report.citation_precision == 1.0
    assert report.answer_contains_gold == 1.0
    # Whole sentences are quoted, so EM is 0 while F1 is partial.
    assert report.exact_match == 0.0
    assert 0.0 < report.f1 < 1.0
    assert report.refusal_rate == 0.0
    assert report.impossible_refusal_rate in (0.0, 1.0)
    json.dumps(report.to_dict())
    assert "gold paragraph@2" in report.metrics()


class _Scripted:
    """Retrieves one fixed list and answers with fixed citations (to check the counts)."""

    def __init__(self, answer: Answer, hits: list[ScoredChunk]) -> None:
        self.answer = answer
        self.hits = hits

    def retrieve(
        self, query: str, k: int | None = None, filters: Filters | None = None
    ) -> list[ScoredChunk]:
        return self.hits

    def ask(self, question: str, k: int | None = None, filters: Filters | None = None) -> Answer:
        return self.answer


def _chunk(doc: str, text: str) -> Chunk:
    return Chunk(id=f"c-{doc}", text=text, document_id=doc, source=f"squad:{doc}", start=0, end=9)


def _cite(marker: int, chunk: Chunk) -> Citation:
    return Citation(marker, chunk.id, chunk.source, 0, len(chunk.text), chunk.text)


def test_citation_precision_counts_gold_paragraph_or_gold_answer() -> None:
    gold = _chunk("A/0", "Hekla erupted.")
    holds_answer = _chunk("B/3", "Hekla is a volcano.")
    wrong = _chunk("C/1", "Penguins huddle.")
    hits = [ScoredChunk(wrong, 0.9), ScoredChunk(gold, 0.8), ScoredChunk(holds_answer, 0.1)]
    answer = Answer(
        question="q",
        text="Hekla [1][2][3].",
        citations=(_cite(1, wrong), _cite(2, gold), _cite(3, holds_answer)),
        contexts=tuple(hits),
    )
    question = SquadQuestion("q1", "Which volcano?", ("Hekla",), "A/0", "A")
    report = evaluate_answers(_Scripted(answer, hits), [question], k=5)
    assert report.citations == 3
    assert report.citation_precision == pytest.approx(2 / 3)
    assert report.per_question[0].gold_rank == 2
    assert report.gold_top1 == 0.0
    assert report.gold_top_k == 1.0
    assert report.exact_match == 1.0  # "Hekla" once markers are removed


def test_refusals_count_against_answerable_and_for_impossible() -> None:
    refusal = Answer(question="q", text="I don't have enough information.", refused=True)
    answerable = SquadQuestion("a", "q?", ("x",), "A/0", "A")
    impossible = SquadQuestion("b", "q?", (), "A/0", "A", is_impossible=True)
    report = evaluate_answers(_Scripted(refusal, []), [answerable, impossible])
    assert report.refusal_rate == 1.0
    assert report.impossible_refusal_rate == 1.0
    assert report.answer_contains_gold == 0.0
    assert report.f1 == 0.0
    assert report.gold_top_k == 0.0
    assert report.citation_precision == 0.0  # no citations at all


def test_bad_arguments_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="k must be positive"):
        evaluate_answers(_Scripted(Answer("q", "t"), []), [], k=0)
    with pytest.raises(ConfigurationError, match="sample must be positive"):
        sample_questions([SquadQuestion("a", "q", ("x",), "d", "t")] * 2, 0)


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_writes_json_and_prints_the_table(
    squad_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CLI builds RAG's default embedder; keep the unit suite model-free.
    import ragkit.embeddings

    monkeypatch.setattr(ragkit.embeddings, "SentenceTransformerEmbedder", FakeEmbedder)
    out = tmp_path / "out" / "squad.json"
    argv = ["eval", "squad", str(squad_file), "--sample", "3", "--seed", "1", "--k", "2"]
    assert main([*argv, "--output", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["benchmark"] == "squad"
    assert data["dataset"] == "tiny-squad"
    assert data["index"]["documents"] == 2
    assert data["answers"]["questions"] == 3
    assert data["answers"]["sample"] == 3
    assert len(data["answers"]["per_question"]) == 3
    assert data["verifier"]["min_relevance"] > 0
    printed = capsys.readouterr().out
    assert "3 questions (seeded sample, seed 1)" in printed
    assert "citation precision" in printed
    assert str(out) in printed


def test_cli_rerank_records_the_reranker_and_its_candidates(
    squad_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ragkit.embeddings
    import ragkit.reranking

    seen: list[int] = []

    class LengthLikelihood(ragkit.reranking.QueryLikelihoodReranker):
        """Scores longer passages higher; records how many candidates it was given."""

        def __init__(self, model: str | None = None) -> None:
            super().__init__("length-model")

        def score(self, query: str, texts: Sequence[str]) -> list[float]:
            seen.append(len(texts))
            return [float(len(t)) for t in texts]

    monkeypatch.setattr(ragkit.embeddings, "SentenceTransformerEmbedder", FakeEmbedder)
    monkeypatch.setattr(ragkit.reranking, "QueryLikelihoodReranker", LengthLikelihood)
    out = tmp_path / "squad.json"
    argv = ["eval", "squad", str(squad_file), "--k", "1", "--rerank", "--output", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert "length-model" in data["reranker"]
    assert data["fetch_k"] == 1
    # the answer's reranker call gets the k chunks (not RetrievalQA's 4 * k); the gold
    # ranking asks for 3 * k, all 2 chunks of this corpus
    assert set(seen) == {1, 2}
    seen.clear()
    assert main([*argv, "--fetch-k", "2"]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["fetch_k"] == 2
    assert set(seen) == {2}


def test_cli_fetch_k_needs_rerank(squad_file: Path) -> None:
    assert main(["eval", "squad", str(squad_file), "--fetch-k", "8"]) == 2


def test_articles_option_selects_questions_by_article_number(squad_file: Path) -> None:
    import argparse

    from ragkit.cli._eval_squad import parse_articles, select_articles

    assert parse_articles("12-14,3") == {3, 12, 13, 14}
    assert parse_articles("1") == {1}
    for bad in ("5-2", "a-b", "-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="--articles"):
            parse_articles(bad)
    questions = SquadDataset(squad_file).questions()
    assert {q.title for q in select_articles(questions, {1})} == {"Penguins"}
    assert {q.title for q in select_articles(questions, {0})} == {"Volcanoes"}
    assert select_articles(questions, None) == questions
