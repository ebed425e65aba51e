"""Records built for the stats tests: results, shadow pairs and corrections with only what a test varies."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from shared.foundation.records import Attempt, CorrectionRecord, ResultRecord, ShadowRecord

DAY1 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
DAY2 = datetime(2025, 3, 2, 12, 0, tzinfo=timezone.utc)


def result(id: str, status: str = "accepted", *, task: str = "ticket", at: datetime | None = DAY1,
           outcomes: tuple[str, ...] = ("accepted",), tiers: tuple[str, ...] = ("small", "frontier"),
           answer: Any = "billing", confidence: float = 0.9, cost: float = 0.001,
           counterfactual: float | None = 0.01, latency_ms: float = 100.0) -> ResultRecord:
    """An item whose attempts end in `outcomes`, tried by `tiers` in order; the last answered attempt answers."""
    attempts = [Attempt(tier=tier, outcome=outcome, confidence=confidence if outcome in ("accepted", "low_confidence") else None,
                        answer=answer if outcome in ("accepted", "low_confidence") else None)
                for tier, outcome in zip(tiers, outcomes)]
    answered = [a for a in attempts if a.answered]
    return ResultRecord(id=id, task=task, status=status, answer=answer if answered else None,
                        confidence=confidence if answered else None, tier=answered[-1].tier if answered else None,
                        attempts=attempts, latency_ms=latency_ms, cost_usd=cost, counterfactual_cost_usd=counterfactual,
                        finished_at=at)


def shadow(id: str, agree: bool | None, *, task: str = "ticket", at: datetime = DAY1, source: str = "incoming/ticket/a.jsonl",
           accepted: Any = "billing") -> ShadowRecord:
    frontier = None if agree is None else accepted if agree else "technical"
    return ShadowRecord(task=task, id=id, source=source, accepted_tier="small", accepted_answer=accepted,
                        accepted_confidence=0.9, frontier_tier="frontier", frontier_answer=frontier, agree=agree, at=at)


def correction(id: str, final: Any, draft: Any = "billing", *, task: str = "ticket", at: datetime = DAY1,
               decision: str = "correct", source: str | None = "incoming/ticket/a.jsonl") -> CorrectionRecord:
    return CorrectionRecord(task=task, id=id, source=source, text=f"text of {id}", decision=decision,
                            final_answer=final, draft_answer=draft, draft_tier="small", by="oncall@example.com", at=at)
