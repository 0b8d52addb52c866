"""Step 5, promote: the trained model goes to the output folder only when it beats the base.

Whatever the outcome, the output folder gets ``finetune-report.json`` (scores, counts,
settings, times and the reason for the decision) and ``ragkit_model.json`` (the model
id that knowledge bases and the embedding cache will record, see
:func:`model_id_of`). An embedder folder always holds a loadable model: the trained one,
or a copy of the base when the base won (its model id is then the base's own, so a kb
built with the base needs no re-embedding). A reranker folder holds the trained model
only when it won: a base encoder with a new, untrained head is not a reranker, so when
the trained one loses to the retriever's own order there is nothing to promote.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragkit.errors import ConfigurationError

__all__ = [
    "CONFIDENCE",
    "MODEL_FILE",
    "REPORT_FILE",
    "WORK_DIR",
    "FinetuneReport",
    "check_output",
    "gain_lower_bound",
    "model_id_of",
    "model_record",
    "promote",
    "weights_digest",
]

#: The report of a fine-tuning run, in the output folder.
REPORT_FILE = "finetune-report.json"
#: What ragkit reads back from a model folder: its model id (and kind, base).
MODEL_FILE = "ragkit_model.json"

Kind = Literal["embedder", "reranker", "adapter"]
#: What to do without a model, by kind, when nothing is written.
_WITHOUT = {
    "reranker": "keep retrieving without this reranker",
    "adapter": "keep querying the kb without a query adapter",
}


@dataclass
class FinetuneReport:
    """What a fine-tuning run did and decided.

    Attributes:
        kind: ``"embedder"``, ``"reranker"`` or ``"adapter"`` (a query adapter, the
            fast mode).
        base: the base model (folder or name).
        promoted: whether the trained model is the one in the output folder.
        reason: why, in words.
        base_score: the base's held-out nDCG@10 (for a reranker: the better of the
            first stage's own order and a base that already had a trained head).
        trained_score: the trained model's held-out nDCG@10.
        model_id: the id of the model in the folder (``None``: no model there).
        pairs: counts (``train``, ``heldout``, ``with_negatives``, ``source``).
        settings: the training settings.
        seconds: wall time per step.
        confidence: the confidence of the gain's lower bound (0: not asked for).
        gain_lower: the held-out gain's one-sided lower bound at ``confidence``
            (paired bootstrap over the held-out queries), or None.
    """

    kind: Kind
    base: str
    promoted: bool
    reason: str
    base_score: float
    trained_score: float
    model_id: str | None
    pairs: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0
    gain_lower: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        verdict = "promoted" if self.promoted else "not promoted"
        return (
            f"{self.kind} {verdict}: held-out nDCG@10 {self.trained_score:.4f} trained vs "
            f"{self.base_score:.4f} base. {self.reason}"
        )


#: Bootstrap resamples behind :func:`gain_lower_bound`.
RESAMPLES = 2000
#: The default confidence the held-out gain needs before a model is promoted (a
#: one-sided 95 % bound), fixed before synthetic seeds 3-5 of
#: ``docs/benchmarks/finetune.md`` ran.
CONFIDENCE = 0.95


def gain_lower_bound(
    base: Sequence[float], trained: Sequence[float], confidence: float, *, seed: int = 0
) -> float:
    """The one-sided lower bound at ``confidence`` of the mean per-query gain
    ``trained - base``, by paired bootstrap over the queries (:data:`RESAMPLES`
    resamples, repeatable for a ``seed``).

    A handful of held-out queries can show a gain that is only luck: a model promoted
    on it may rank new queries worse. The bound says how small the gain could
    plausibly be.

    Raises:
        ConfigurationError: the two lists differ in length or are empty, or
            ``confidence`` is not in (0, 1).
    """
    if not 0 < confidence < 1:
        raise ConfigurationError(f"confidence must be between 0 and 1, got {confidence}")
    if len(base) != len(trained) or not base:
        raise ConfigurationError(
            f"per-query scores must pair up: {len(base)} base and {len(trained)} trained"
        )
    import numpy as np

    gains = np.asarray(trained, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(gains), size=(RESAMPLES, len(gains)))
    means = gains[picks].mean(axis=1)
    return float(np.quantile(means, 1 - confidence))


def weights_digest(folder: Path) -> str:
    """A short sha256 of a model folder's weight files (what makes two models differ)."""
    digest = hashlib.sha256()
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".npz")
    )
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:12]


def model_record(folder: str | Path) -> dict[str, Any]:
    """What a fine-tuned model folder records (``ragkit_model.json``: model id, kind,
    base, and for a reranker its mix weight); empty for any other folder."""
    path = Path(folder) / MODEL_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def model_id_of(folder: str | Path) -> str | None:
    """The model id recorded in a fine-tuned model folder, or None for any other folder."""
    model_id = model_record(folder).get("model_id")
    return model_id if isinstance(model_id, str) and model_id else None


def _base_name(base: str) -> str:
    return Path(base.rstrip("/")).name or base


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


#: The scratch folder of a run inside the output folder (removed when it ends).
WORK_DIR = ".training"


def check_output(out: str | Path) -> Path:
    """``out`` as a folder a run may fill: missing, empty, or an earlier run's output.

    Raises:
        ConfigurationError: ``out`` is a file, or a folder holding anything else
            (nothing of the user's is ever deleted).
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigurationError(f"{folder} is a file; --out must be a folder")
    if folder.is_dir():
        names = {p.name for p in folder.iterdir()} - {WORK_DIR}
        if names and REPORT_FILE not in names:
            raise ConfigurationError(
                f"{folder} is not empty and holds no earlier fine-tuning run "
                f"({REPORT_FILE}); choose a new or empty folder"
            )
    return folder


def _clear(folder: Path) -> None:
    """Empty an earlier run's output folder (:func:`check_output` vouched for it)."""
    check_output(folder)
    for child in folder.iterdir():
        if child.name == WORK_DIR:
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def promote(
    *,
    kind: Kind,
    out: str | Path,
    base: str,
    base_id: str,
    base_score: float,
    trained: Path,
    trained_score: float,
    min_gain: float = 0.0,
    per_query: tuple[Sequence[float], Sequence[float]] | None = None,
    confidence: float = 0.0,
    save_base: Any = None,
    recorded: tuple[dict[str, Any], dict[str, Any]] = ({}, {}),
    pairs: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    seconds: dict[str, float] | None = None,
) -> FinetuneReport:
    """Put the winner in ``out`` and write the report.

    The trained model wins when ``trained_score > base_score + min_gain`` and, when
    ``confidence`` is above 0, the gain's lower bound at that confidence (see
    :func:`gain_lower_bound`) is above ``min_gain`` too.

    Args:
        kind: ``"embedder"``, ``"reranker"`` or ``"adapter"``.
        out: the output folder (emptied of an earlier model first).
        base: the base model as the user named it.
        base_id: the base's model id (kept when the base wins).
        base_score: the base's held-out nDCG@10.
        trained: the trained model folder.
        trained_score: its held-out nDCG@10.
        min_gain: how much better the trained model must be.
        per_query: (base, trained) nDCG@10 of each held-out query, for the bound.
        confidence: how sure the gain must be (0: the means alone decide).
        save_base: called with ``out`` to save the base there when it wins (None:
            no model is written, as for a reranker without a trained base).
        recorded: what ``ragkit_model.json`` also records when the (base, trained)
            model wins, such as a reranker's mix weight.
        pairs, settings, seconds: recorded in the report.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    _clear(folder)
    won = trained_score > base_score + min_gain
    lower: float | None = None
    bound = ""
    if confidence > 0:
        if per_query is None:
            raise ConfigurationError("a confidence needs the per-query scores (per_query)")
        lower = gain_lower_bound(*per_query, confidence)
        bound = f" (its {confidence:.0%} lower bound {lower:+.4f} over {len(per_query[0])} queries)"
    sure = lower is None or lower > min_gain
    model_id: str | None
    if won and sure:
        for child in trained.iterdir():
            target = folder / child.name
            if child.is_dir():
                shutil.copytree(child, target)
            else:
                shutil.copy2(child, target)
        model_id = f"ragkit-finetuned/{_base_name(base)}-{kind}-{weights_digest(folder)}"
        reason = (
            f"the trained {kind} beats the base on the held-out documents by "
            f"{trained_score - base_score:+.4f} nDCG@10{bound}"
        )
    else:
        gap = trained_score - base_score
        if won:
            reason = (
                f"the trained {kind}'s held-out gain could be luck ({gap:+.4f} nDCG@10"
                f"{bound}, needed more than {min_gain:+.4f}); "
            )
        else:
            reason = (
                f"the trained {kind} does not beat the base on the held-out documents "
                f"({gap:+.4f} nDCG@10, needed more than {min_gain:+.4f}); "
            )
        if save_base is not None:
            save_base(folder)
            model_id = base_id
            reason += "the base model is kept in this folder"
        else:
            model_id = None
            reason += f"no model is written: {_WITHOUT.get(kind, 'keep the base')}"
    report = FinetuneReport(
        kind=kind,
        base=base,
        promoted=won and sure,
        reason=reason,
        base_score=base_score,
        trained_score=trained_score,
        model_id=model_id,
        pairs=dict(pairs or {}),
        settings=dict(settings or {}),
        seconds=dict(seconds or {}),
        confidence=confidence,
        gain_lower=lower,
    )
    if model_id is not None:
        _write_json(
            folder / MODEL_FILE,
            {
                **recorded[report.promoted],
                "model_id": model_id,
                "kind": kind,
                "base": base,
                "promoted": report.promoted,
            },
        )
    _write_json(folder / REPORT_FILE, report.to_dict())
    return report
