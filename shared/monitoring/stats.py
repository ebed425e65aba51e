"""What the records say, per task and day: volume, outcomes, escalation reasons, answering tiers, cost against
the all-frontier counterfactual, latency, and the live accuracy of accepted answers and of review drafts.

Plain functions over records (reading them is shared/monitoring/stats_sources.py). The day of a result is the
UTC day of its `finished_at`; of a shadow pair or a correction, the UTC day of its `at`.

Live accuracy is estimated from shadow pairs: an accepted answer is right when the frontier agreed with it, or,
where a person has corrected the item, when it equals the corrected answer (a correction is ground truth).
Draft accuracy is the share of review drafts a person kept: the final answer equals the draft.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Iterable, Mapping, get_args

from pydantic import BaseModel, Field, computed_field

from shared.foundation.records import AttemptOutcome, CorrectionRecord, ResultRecord, ShadowRecord, Status, utc
from shared.foundation import metrics
from shared.foundation.answers import same_answer
from shared.monitoring.stats_prices import TierPrice

STATUSES: tuple[str, ...] = get_args(Status)
# Why a tier's attempt did not settle the item: every attempt outcome but a verdict-free or accepted answer.
ESCALATION_REASONS: tuple[str, ...] = tuple(o for o in get_args(AttemptOutcome) if o not in ("answered", "accepted"))
NO_TIER = "none"  # the answering tier of an item no tier answered
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)


def day_of(moment: datetime) -> date:
    return utc(moment).astimezone(timezone.utc).date()


@dataclass(frozen=True)
class SourcedResult:
    """A result record and the input it came from (`incoming/<task>/<name>`, or a local file)."""

    source: str
    record: ResultRecord


def latest_results(results: Iterable[SourcedResult]) -> list[ResultRecord]:
    """One record per (task, id, source): a `reviewed` one, else the one finished last. An item waiting for a
    person is in both results/ and review/, and after review its result says `reviewed`."""

    def rank(record: ResultRecord) -> tuple[bool, datetime]:
        return record.status == "reviewed", utc(record.finished_at) if record.finished_at else _EARLIEST

    best: dict[tuple[str, str, str], ResultRecord] = {}
    for sourced in results:
        record = sourced.record
        key = (record.task, record.id, sourced.source)
        if key not in best or rank(record) > rank(best[key]):
            best[key] = record
    return list(best.values())


def latest_shadows(shadows: Iterable[ShadowRecord]) -> list[ShadowRecord]:
    """One pair per (task, source, id), the latest: a redelivered queue message may shadow an item twice."""
    best: dict[tuple[str, str | None, str], ShadowRecord] = {}
    for pair in shadows:
        key = (pair.task, pair.source, pair.id)
        if key not in best or utc(pair.at) > utc(best[key].at):
            best[key] = pair
    return list(best.values())


CorrectionKey = tuple[str, str | None, str]  # (task, source, id), as a shadow pair names its item


def latest_corrections(corrections: Iterable[CorrectionRecord]) -> dict[CorrectionKey, CorrectionRecord]:
    """The latest decision per item of an input: the same id in two inputs is two items."""
    best: dict[CorrectionKey, CorrectionRecord] = {}
    for correction in corrections:
        key = (correction.task, correction.source, correction.id)
        if key not in best or utc(correction.at) > utc(best[key].at):
            best[key] = correction
    return best


def correction_of(pair: ShadowRecord, corrections: dict[CorrectionKey, CorrectionRecord]) -> CorrectionRecord | None:
    """The decision on the pair's item; a correction written before records named their input matches by id."""
    return corrections.get((pair.task, pair.source, pair.id)) or corrections.get((pair.task, None, pair.id))


def shadow_verdict(pair: ShadowRecord, correction: CorrectionRecord | None) -> bool | None:
    """Was the accepted answer right? None when nothing says (the frontier gave no valid answer)."""
    if correction is not None:
        return same_answer(pair.accepted_answer, correction.final_answer)
    return pair.agree


class Proportion(BaseModel):
    """`successes` of `n`, with the Wilson score interval at 95%."""

    successes: int = 0
    n: int = 0

    @computed_field
    @property
    def value(self) -> float | None:
        return self.successes / self.n if self.n else None

    @computed_field
    @property
    def interval(self) -> tuple[float, float]:
        return metrics.wilson_interval(self.successes, self.n)


class PeriodStats(BaseModel):
    """One task over one day (or, with `day` None, over the whole window)."""

    task: str
    day: date | None
    volume: int
    statuses: dict[str, int]  # every status, zeros included
    escalation_reasons: dict[str, int]  # attempts that did not settle their item, by outcome
    tiers: dict[str, int]  # items by answering tier (NO_TIER when none answered)
    cost_usd: float  # what the records count: less than was spent when cost_unknown > 0
    cost_unknown: int  # items a tier with no known price was tried on (its tokens counted at zero)
    # items in the saving: their cost is known and they carry a counterfactual (none where the frontier's price is
    # unknown, or in records written before it existed)
    priced: int
    priced_cost_usd: float  # the cost of those items, compared with their counterfactual
    counterfactual_cost_usd: float
    latency_ms: dict[str, float]  # p50, p95
    live_accuracy: Proportion  # accepted answers right, from shadow pairs (and corrections)
    draft_accuracy: Proportion  # review drafts a person kept unchanged

    def share(self, status: str) -> float:
        return self.statuses.get(status, 0) / self.volume if self.volume else 0.0

    @computed_field
    @property
    def escalation_rate(self) -> float:
        """Items the first tier did not settle: escalated, sent to review or failed."""
        return 1.0 - self.share("accepted") if self.volume else 0.0

    @computed_field
    @property
    def saving_usd(self) -> float:
        return self.counterfactual_cost_usd - self.priced_cost_usd

    @computed_field
    @property
    def saving_share(self) -> float | None:
        return self.saving_usd / self.counterfactual_cost_usd if self.counterfactual_cost_usd > 0 else None


class TaskStats(BaseModel):
    task: str
    days: list[PeriodStats]  # oldest first, only days with any record
    total: PeriodStats
    confidences: dict[str, list[float]]  # per tier: the confidence of every answer it gave (the histograms)
    prices: list[TierPrice] = Field(default_factory=list)  # the prices behind the costs (none: task not found)


class StatsSummary(BaseModel):
    since: date | None
    tasks: list[TaskStats]
    undated: int  # result records without `finished_at`, which no day can hold


@dataclass
class PeriodRecords:
    """The records of one task for one period (a day, or the window)."""

    results: list[ResultRecord] = field(default_factory=list)
    pairs: list[ShadowRecord] = field(default_factory=list)
    decisions: list[CorrectionRecord] = field(default_factory=list)

    def add(self, other: "PeriodRecords") -> None:
        self.results += other.results
        self.pairs += other.pairs
        self.decisions += other.decisions


def period_stats(task: str, day: date | None, found: PeriodRecords,
                 corrections: dict[CorrectionKey, CorrectionRecord]) -> PeriodStats:
    records = found.results
    statuses = Counter(r.status for r in records)
    reasons = Counter(a.outcome for r in records for a in r.attempts)
    priced = [r for r in records if r.counterfactual_cost_usd is not None and r.cost_known]
    verdicts = [v for v in (shadow_verdict(p, correction_of(p, corrections)) for p in found.pairs) if v is not None]
    drafts = [c for c in found.decisions if c.draft_answer is not None]
    return PeriodStats(
        task=task, day=day, volume=len(records), statuses={s: statuses[s] for s in STATUSES},
        escalation_reasons={reason: reasons[reason] for reason in ESCALATION_REASONS},
        tiers=dict(Counter(r.tier or NO_TIER for r in records).most_common()),
        cost_usd=sum(r.cost_usd for r in records), cost_unknown=sum(not r.cost_known for r in records),
        priced=len(priced),
        priced_cost_usd=sum(r.cost_usd for r in priced),
        counterfactual_cost_usd=sum(r.counterfactual_cost_usd or 0.0 for r in priced),
        latency_ms=metrics.percentiles([r.latency_ms for r in records], qs=(50, 95)),
        live_accuracy=Proportion(successes=sum(verdicts), n=len(verdicts)),
        draft_accuracy=Proportion(successes=sum(same_answer(c.draft_answer, c.final_answer) for c in drafts),
                                  n=len(drafts)),
    )


def confidences_by_tier(records: list[ResultRecord]) -> dict[str, list[float]]:
    confidences: dict[str, list[float]] = defaultdict(list)
    for record in records:
        for attempt in record.attempts:
            if attempt.answered and attempt.confidence is not None:
                confidences[attempt.tier].append(attempt.confidence)
    return dict(confidences)


def summarise(results: Iterable[SourcedResult], shadows: Iterable[ShadowRecord] = (),
              corrections: Iterable[CorrectionRecord] = (), *, task: str | None = None,
              since: date | None = None, prices: Mapping[str, list[TierPrice]] | None = None) -> StatsSummary:
    """Every task (or only `task`) per day from `since` on (every day with None), and over the whole window;
    `prices`: each task's, to say what its savings were priced at."""
    wanted = (lambda name: name == task) if task else (lambda name: True)
    in_window = (lambda day: day >= since) if since else (lambda day: True)
    records = [r for r in latest_results(results) if wanted(r.task)]
    decisions = latest_corrections(corrections)
    by_day: dict[str, dict[date, PeriodRecords]] = defaultdict(lambda: defaultdict(PeriodRecords))
    for record in records:
        if record.finished_at and in_window(day_of(record.finished_at)):
            by_day[record.task][day_of(record.finished_at)].results.append(record)
    for pair in latest_shadows(shadows):
        if wanted(pair.task) and in_window(day_of(pair.at)):
            by_day[pair.task][day_of(pair.at)].pairs.append(pair)
    for correction in decisions.values():
        if wanted(correction.task) and in_window(day_of(correction.at)):
            by_day[correction.task][day_of(correction.at)].decisions.append(correction)

    tasks = []
    for name, days in sorted(by_day.items()):
        window = PeriodRecords()
        for found in days.values():
            window.add(found)
        tasks.append(TaskStats(task=name, days=[period_stats(name, day, days[day], decisions) for day in sorted(days)],
                               total=period_stats(name, None, window, decisions),
                               confidences=confidences_by_tier(window.results),
                               prices=(prices or {}).get(name, [])))
    return StatsSummary(since=since, tasks=tasks, undated=sum(r.finished_at is None for r in records))


def confidence_drift(confidences: dict[str, list[float]], reference: dict[str, list[float]]) -> dict[str, float]:
    """Per tier with a tuning reference and live answers: the population stability index of its confidences."""
    return {tier: metrics.population_stability_index(reference[tier], metrics.confidence_histogram(live))
            for tier, live in sorted(confidences.items()) if tier in reference and live}


def drift_level(psi: float) -> str:
    return "stable" if psi < 0.1 else "moderate drift" if psi < 0.25 else "shifted: re-tune the threshold"
