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


def test_the_one_tier_table_recommends_by_the_bound_tune_uses_not_the_point_estimate(tmp_path):
    from shared.core.policy import AcceptancePolicy
    from shared.evaluation.report import _single_tier_blocks

    # 100 items, confidence falling with the index; the 70 most confident right, then one wrong, then the rest right
    records = [EvalRecord(task="support_ticket", kind="classification", id=str(n), gold="billing", tier="trained",
                          outcome="answered", answer="billing" if n != 70 else "account",
                          confidence=1 - n / 200, raw_confidence=1 - n / 200) for n in range(100)]
    run = TierRun("trained", "classification", records)
    policy = AcceptancePolicy(TaskCatalog(REPO / "tasks").get("support_ticket"))
    (table,) = [block for block in _single_tier_blocks(run, policy, tmp_path, 0.95) if block[0] == "table"]
    threshold, bound, accuracy, accepted = table[2][0][1:]
    # the point estimate would accept all 100 (99% right); 70 of 70 right shows 0.05 ** (1 / 70) = 0.958 >= 0.95,
    # and 70 of 71 shows less than 0.95, so the fixed sequence stops there
    assert (threshold, accepted, accuracy) == ("0.655", "70.0%", "1.000")
    assert bound == f"{0.05 ** (1 / 70):.3f}"
