"""Eval run files, and the one analysis of them that `report` and `tune` share.

A run file holds one EvalRecord per (item, tier): the tier's Attempt plus the gold answer. Analysis loads
a run (and optionally a second run used as the frontier), simulates the cascade over every threshold on the
same confidence the cascade compares (the tier's own, through the task's calibration), and recommends the
lowest threshold shown, with a stated confidence, to reach the target accuracy (evaluation/guarantees.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from shared.foundation.records import Attempt
from shared.foundation.text_files import decode_text, jsonl_lines
from shared.errors import InputError
from shared.evaluation import cascade_simulation, guarantees
from shared.foundation import answers, metrics

SMALL, FRONTIER = "small", "frontier"


class EvalRecord(Attempt):
    """One tier's attempt at one labelled item, and the item's gold answer."""

    task: str
    kind: str
    id: str
    gold: Any


def read_run(path: Path, task: str | None = None) -> list[EvalRecord]:
    """The records of an eval run file, the last of each (item, tier) (a resumed or concatenated run may repeat
    one), skipping lines cut short by an interruption. InputError if it is not text (no line a record), or if its
    records are not all of `task` (of one task, without it): analysing one task's run as another's would be
    silently wrong."""
    data = path.read_bytes()
    not_text = None
    try:
        lines = [line for _, line in jsonl_lines(decode_text(data, str(path)))]
    except InputError as exc:  # an interruption may cut a line inside a character: that line is no record anyway
        not_text, lines = exc, list(_utf8_lines(data))
    latest: dict[tuple[str, str, str], EvalRecord] = {}
    for line in lines:
        try:
            record = EvalRecord.model_validate_json(line)
        except ValueError:
            continue
        latest[(record.task, record.id, record.tier)] = record
    if not latest and not_text is not None:
        raise not_text
    records = list(latest.values())
    tasks = sorted({record.task for record in records})
    if len(tasks) > 1:
        raise InputError("mixed_tasks", f"{path}: holds records of several tasks ({', '.join(tasks)}); one run file "
                         "is one task's")
    if task is not None and tasks and tasks != [task]:
        raise InputError("wrong_task", f"{path}: a run of {tasks[0]}, not of {task}")
    return records


def _utf8_lines(data: bytes) -> Iterator[str]:
    for raw in data.split(b"\n"):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            continue


def done_pairs(path: Path, task: str) -> set[tuple[str, str]]:
    """The (item id, tier) pairs a run file of `task` already holds."""
    if not path.exists():
        return set()
    return {(r.id, r.tier) for r in read_run(path, task)}


@dataclass
class TierRun:
    """One tier's records from one run file, in item order, with what analysis needs of each."""

    name: str
    kind: str
    records: list[EvalRecord]
    correct: list[bool] = field(init=False)

    def __post_init__(self) -> None:
        self.correct = [r.answered and answers.is_correct(self.kind, r.answer, r.gold) for r in self.records]

    @property
    def raw_confidences(self) -> list[float]:
        return [r.raw_confidence if r.raw_confidence is not None else 0.0 for r in self.records]

    @property
    def costs(self) -> list[float]:
        return [r.cost_usd for r in self.records]

    def restricted_to(self, ids: set[str]) -> "TierRun":
        return TierRun(self.name, self.kind, [r for r in self.records if r.id in ids])


def tier_runs(records: list[EvalRecord], prefix: str = "") -> dict[str, TierRun]:
    by_tier: dict[str, list[EvalRecord]] = {}
    for record in records:
        by_tier.setdefault(record.tier, []).append(record)
    return {f"{prefix}{tier}": TierRun(f"{prefix}{tier}", rs[0].kind, sorted(rs, key=lambda r: r.id))
            for tier, rs in by_tier.items()}


def load_runs(run_path: Path, task: str, frontier_run: Path | None = None) -> dict[str, TierRun]:
    """The tiers of a run of `task`; with `frontier_run` (of the same task), its frontier tier (or its only tier)
    becomes `frontier`.

    The second run's tier is always filed as `frontier`, whatever it was called there, so a frontier
    recorded under the name `small` can never replace the small tier of the first run.
    """
    runs = tier_runs(read_run(run_path, task))
    if frontier_run is not None:
        extra = tier_runs(read_run(frontier_run, task))
        if FRONTIER in extra:
            chosen = extra[FRONTIER]
        elif len(extra) == 1:
            chosen = next(iter(extra.values()))
        else:
            raise ValueError(f"{frontier_run}: holds tiers {sorted(extra)}; which one is the frontier is unclear")
        if not {r.id for r in chosen.records} & {r.id for run in runs.values() for r in run.records}:
            raise InputError("no_shared_items", f"{frontier_run} and {run_path} share no item ids: the frontier run "
                             "must answer the same labelled items")
        runs[FRONTIER] = TierRun(FRONTIER, chosen.kind, chosen.records)
    return runs


def aligned(a: TierRun, b: TierRun) -> tuple[TierRun, TierRun]:
    """The two tiers restricted to the items both answered, in the same order."""
    common = {r.id for r in a.records} & {r.id for r in b.records}
    return a.restricted_to(common), b.restricted_to(common)


def default_target(frontier: TierRun) -> float:
    """The frontier's accuracy less one point (0 at least)."""
    return max(0.0, float(np.mean(frontier.correct)) - 0.01)


@dataclass
class CascadeAnalysis:
    small: TierRun
    frontier: TierRun
    confidences: list[float]  # the small tier's, as the cascade compares them
    points: list[cascade_simulation.CascadePoint]
    target: float
    selection: guarantees.Selection
    recommendation: cascade_simulation.Recommendation | None

    @property
    def co_failure(self) -> dict[str, int]:
        return metrics.co_failure(self.small.correct, self.frontier.correct)


def analyse_cascade(small: TierRun, frontier: TierRun, calibrated: Callable[[float], float],
                    target: float | None = None, confidence: float = guarantees.DEFAULT_CONFIDENCE) -> CascadeAnalysis:
    """The cascade over every threshold of `calibrated(raw confidence)`, and the recommended threshold: the lowest
    whose cascade accuracy is shown to reach the target with `confidence`."""
    s, f = aligned(small, frontier)
    confidences = [calibrated(c) for c in s.raw_confidences]
    points = cascade_simulation.simulate_cascade(confidences, s.correct, s.costs, f.correct, f.costs)
    goal = default_target(f) if target is None else target
    conf = np.asarray(confidences)
    selection = guarantees.select_cascade(conf, s.correct, f.correct, [p.threshold for p in points], goal, confidence)
    recommendation = cascade_simulation.recommend_threshold(
        points, selection, lambda t: cascade_simulation.simulated_correct(conf, t, s.correct, f.correct),
        float(np.mean(f.costs)) or None)
    return CascadeAnalysis(s, f, confidences, points, goal, selection, recommendation)
