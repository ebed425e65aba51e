"""The eval report's cost rows: a tier whose model has no known price shows its cost as unknown, not $0."""

from __future__ import annotations

from pathlib import Path

from shared.evaluation.report import quality_rows
from shared.evaluation.run_analysis import EvalRecord, TierRun
from shared.foundation.tasks import TaskCatalog

REPO = Path(__file__).resolve().parents[2]


def _run(cost_known: bool) -> TierRun:
    records = [EvalRecord(task="support_ticket", kind="classification", id=str(n), gold="billing", tier="small",
                          outcome="answered", answer="billing", confidence=0.9, raw_confidence=0.9,
                          tokens_in=100, tokens_out=5, cost_usd=0.0 if not cost_known else 0.0002,
                          cost_known=cost_known or n % 2 == 0)
               for n in range(4)]
    return TierRun("small", "classification", records)


def test_report_shows_an_unpriced_tiers_cost_as_unknown_with_how_many_items():
    rows = dict(quality_rows(_run(cost_known=False), TaskCatalog(REPO / "tasks").get("support_ticket")))
    assert rows["cost per item (USD)"] == "unknown (2 of 4 items unpriced: set PRICE_*)"
    assert rows["cost per 1M items (USD)"] == "unknown"


def test_report_shows_a_priced_tiers_cost_in_dollars():
    rows = dict(quality_rows(_run(cost_known=True), TaskCatalog(REPO / "tasks").get("support_ticket")))
    assert rows["cost per item (USD)"] == "0.000200" and rows["cost per 1M items (USD)"] == "200"


def test_the_cascade_section_claims_no_saving_when_a_tier_is_unpriced(tmp_path):
    from shared.evaluation.report import _cascade_blocks
    from shared.evaluation.run_analysis import analyse_cascade

    small = _run(cost_known=False)
    frontier = TierRun("frontier", "classification", [
        EvalRecord(task="support_ticket", kind="classification", id=str(n), gold="billing", tier="frontier",
                   outcome="answered", answer="billing", confidence=1.0, raw_confidence=1.0, cost_usd=0.01)
        for n in range(4)])
    analysis = analyse_cascade(small, frontier, lambda c: c, 0.4)
    text = " ".join(str(part) for block in _cascade_blocks(analysis, tmp_path, calibrated=False) for part in block)
    assert "Costs count small at $0: its model has no known price" in text and "cheaper than all-frontier" not in text
