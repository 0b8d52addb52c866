"""Ranking metrics against cases worked out by hand from trec_eval's definitions."""

from __future__ import annotations

from math import log2

import pytest

from ragkit.errors import ConfigurationError
from ragkit.eval.metrics import (
    DEFAULT_MEASURES,
    evaluate_run,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    rank,
    recall_at_k,
)

ALL = (ndcg_at_k, recall_at_k, mrr_at_k, map_at_k)


# --- order -----------------------------------------------------------------------------


def test_rank_orders_by_score_then_by_id_descending() -> None:
    scores = {"a": 0.5, "c": 0.5, "b": 0.5, "top": 0.9, "low": 0.1}
    assert rank(scores) == ["top", "c", "b", "a", "low"]


def test_rank_compares_ids_as_strings_not_numbers() -> None:
    # trec_eval breaks ties with strcmp: "9" sorts after "10", so "9" comes first.
    assert rank({"10": 1.0, "9": 1.0, "100": 1.0}) == ["9", "100", "10"]


# --- nDCG ------------------------------------------------------------------------------


def test_ndcg_uses_graded_gains_and_log2_discount() -> None:
    relevance = {"a": 3, "b": 2, "c": 0, "d": 1}
    # ranked: x (unjudged), b (2), a (3), c (0); d (1) is never retrieved
    scores = {"x": 0.9, "b": 0.8, "a": 0.7, "c": 0.6}
    dcg = 0 + 2 / log2(3) + 3 / log2(4) + 0
    ideal = 3 / log2(2) + 2 / log2(3) + 1 / log2(4)
    assert ndcg_at_k(relevance, scores, k=10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(relevance, scores, k=10) == pytest.approx(2.76186 / 4.76186, abs=1e-6)


def test_ndcg_cuts_both_the_ranking_and_the_ideal_at_k() -> None:
    relevance = {"a": 3, "b": 2, "d": 1}
    scores = {"x": 0.9, "b": 0.8, "a": 0.7}
    # top 2: x, b; ideal top 2: 3, 2
    assert ndcg_at_k(relevance, scores, k=2) == pytest.approx((2 / log2(3)) / (3 + 2 / log2(3)))
    assert ndcg_at_k(relevance, scores, k=1) == 0.0


def test_ndcg_is_one_for_the_ideal_order_and_linear_in_gain() -> None:
    relevance = {"a": 2, "b": 1}
    assert ndcg_at_k(relevance, {"a": 2.0, "b": 1.0, "z": 0.5}) == pytest.approx(1.0)
    # swapped: linear gains (2**g - 1 would give (1 + 3/log2(3)) / (3 + 1/log2(3)))
    swapped = (1 + 2 / log2(3)) / (2 + 1 / log2(3))
    assert ndcg_at_k(relevance, {"b": 2.0, "a": 1.0}) == pytest.approx(swapped)


def test_ndcg_ignores_zero_and_negative_grades() -> None:
    relevance = {"bad": -1, "meh": 0, "good": 1}
    scores = {"bad": 0.9, "meh": 0.8, "good": 0.7}
    assert ndcg_at_k(relevance, scores) == pytest.approx(1 / log2(4))


# --- recall ----------------------------------------------------------------------------


def test_recall_counts_grades_of_one_or_more_as_relevant() -> None:
    relevance = {"a": 1, "b": 2, "c": 1, "d": 1, "n": 0, "neg": -2}
    scores = {"a": 0.9, "n": 0.8, "b": 0.7, "neg": 0.6, "c": 0.5}
    assert recall_at_k(relevance, scores, k=10) == pytest.approx(3 / 4)
    assert recall_at_k(relevance, scores, k=2) == pytest.approx(1 / 4)
    assert recall_at_k(relevance, scores, k=3) == pytest.approx(2 / 4)


# --- MRR -------------------------------------------------------------------------------


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_document() -> None:
    relevance = {"r1": 1, "r2": 2, "n": 0}
    scores = {"x": 0.9, "n": 0.8, "r2": 0.7, "r1": 0.6}
    assert mrr_at_k(relevance, scores, k=10) == pytest.approx(1 / 3)
    assert mrr_at_k(relevance, scores, k=3) == pytest.approx(1 / 3)
    assert mrr_at_k(relevance, scores, k=2) == 0.0


def test_mrr_is_zero_when_the_first_relevant_is_past_k() -> None:
    scores = {f"x{i:02d}": 1.0 - i / 100 for i in range(10)} | {"r": 0.0}
    assert mrr_at_k({"r": 1}, scores, k=10) == 0.0
    assert mrr_at_k({"r": 1}, scores, k=11) == pytest.approx(1 / 11)


# --- MAP -------------------------------------------------------------------------------


def test_map_divides_by_all_relevant_documents_not_by_k() -> None:
    relevance = {"a": 1, "b": 1, "c": 1, "d": 1}
    scores = {"a": 0.9, "x": 0.8, "b": 0.7, "y": 0.6}
    # precision at a (rank 1) = 1, at b (rank 3) = 2/3; c and d never found
    assert map_at_k(relevance, scores, k=10) == pytest.approx((1 + 2 / 3) / 4)
    assert map_at_k(relevance, scores, k=2) == pytest.approx(1 / 4)


def test_map_ignores_grade_zero_in_the_denominator() -> None:
    relevance = {"a": 2, "n": 0}
    assert map_at_k(relevance, {"n": 0.9, "a": 0.8}) == pytest.approx(1 / 2)


# --- ties ------------------------------------------------------------------------------


def test_tied_scores_are_broken_by_descending_document_id() -> None:
    relevance = {"a": 1}
    scores = {"a": 0.5, "b": 0.5, "c": 0.5}  # ranked c, b, a
    assert mrr_at_k(relevance, scores) == pytest.approx(1 / 3)
    assert map_at_k(relevance, scores) == pytest.approx(1 / 3)
    assert ndcg_at_k(relevance, scores) == pytest.approx(1 / log2(4))
    assert recall_at_k(relevance, scores, k=2) == 0.0
    assert recall_at_k(relevance, scores, k=3) == 1.0
    # the same documents, relevant one last in id order, comes first
    assert mrr_at_k({"c": 1}, scores) == 1.0


# --- degenerate cases ------------------------------------------------------------------


@pytest.mark.parametrize("metric", ALL)
def test_no_relevant_documents_scores_zero(metric) -> None:  # type: ignore[no-untyped-def]
    assert metric({"a": 0, "b": -1}, {"a": 0.9, "b": 0.8}, 10) == 0.0
    assert metric({}, {"a": 0.9}, 10) == 0.0


@pytest.mark.parametrize("metric", ALL)
def test_empty_run_scores_zero(metric) -> None:  # type: ignore[no-untyped-def]
    assert metric({"a": 1}, {}, 10) == 0.0


@pytest.mark.parametrize("metric", ALL)
@pytest.mark.parametrize("k", [0, -1, True, 2.5])
def test_k_must_be_a_positive_integer(metric, k) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match="k must be a positive integer"):
        metric({"a": 1}, {"a": 1.0}, k)


# --- aggregation -----------------------------------------------------------------------


def test_evaluate_run_averages_over_queries_with_a_relevant_document() -> None:
    qrels = {
        "q1": {"d1": 1},  # found first: 1.0
        "q2": {"d2": 1},  # found second: 0.5
        "q3": {"d3": 0},  # nothing relevant: skipped
        "q4": {"d4": 1},  # not in the run: 0
    }
    run = {
        "q1": {"d1": 0.9, "d2": 0.1},
        "q2": {"d1": 0.9, "d2": 0.1},
        "q3": {"d3": 0.9},
        "q9": {"d9": 0.9},  # not in the qrels: ignored
    }
    result = evaluate_run(qrels, run, ["mrr@10", "recall@1"])
    assert result.skipped == ("q3",)
    assert set(result.per_query) == {"q1", "q2", "q4"}
    assert result.mean["mrr@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert result.mean["recall@1"] == pytest.approx(1 / 3)
    assert result.per_query["q2"] == {"mrr@10": 0.5, "recall@1": 0.0}


def test_evaluate_run_default_measures_and_no_queries() -> None:
    result = evaluate_run({}, {})
    assert tuple(result.mean) == DEFAULT_MEASURES
    assert all(v == 0.0 for v in result.mean.values())
    assert result.per_query == {}


def test_evaluate_run_keeps_each_measure_once_in_order() -> None:
    result = evaluate_run({"q": {"d": 1}}, {"q": {"d": 1.0}}, ["map@10", "ndcg@3", "map@10"])
    assert list(result.mean) == ["map@10", "ndcg@3"]
    assert result.mean == {"map@10": 1.0, "ndcg@3": 1.0}


@pytest.mark.parametrize("measure", ["ndcg", "ndcg@", "ndcg@0", "ndcg@x", "P@10", "NDCG@10"])
def test_evaluate_run_rejects_unknown_measures(measure: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown measure"):
        evaluate_run({"q": {"d": 1}}, {}, [measure])
