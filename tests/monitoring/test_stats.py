"""The stats aggregation on constructed records: counts, shares, reasons, tiers, savings, latency, de-duplication,
the window, and live accuracy with its Wilson interval."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from shared.foundation.metrics import wilson_interval
from shared.foundation.answers import same_answer
from shared.monitoring.stats import SourcedResult, StatsSummary, TaskStats, summarise
from shared.pipeline.blob_names import input_of_output
from tests.monitoring.records import DAY1, DAY2, correction, result, shadow

SOURCE = "incoming/ticket/a.jsonl"


def sourced(*records, source: str = SOURCE) -> list[SourcedResult]:
    return [SourcedResult(source, record) for record in records]


def only_task(summary: StatsSummary) -> TaskStats:
    assert len(summary.tasks) == 1
    return summary.tasks[0]


def test_volume_and_status_shares_are_counted_per_utc_day_and_over_the_window():
    records = sourced(
        result("a"), result("b"), result("c", "escalated", outcomes=("low_confidence", "accepted")),
        result("d", "needs_review", outcomes=("low_confidence",), tiers=("small",)),
        result("e", "accepted", at=DAY2), result("f", "failed", at=DAY2, outcomes=("error",), tiers=("small",)),
    )
    stats = only_task(summarise(records))
    day1, day2 = stats.days
    assert (day1.day, day2.day) == (date(2025, 3, 1), date(2025, 3, 2))
    assert (day1.volume, day2.volume, stats.total.volume) == (4, 2, 6)
    assert day1.statuses == {"accepted": 2, "escalated": 1, "needs_review": 1, "failed": 0, "reviewed": 0}
    assert day1.share("accepted") == 0.5 and day1.escalation_rate == 0.5
    assert day2.share("failed") == 0.5
    assert stats.total.share("accepted") == pytest.approx(3 / 6)


def test_a_finish_shortly_after_midnight_elsewhere_counts_on_the_previous_utc_day():
    berlin_small_hours = datetime(2025, 3, 2, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    stats = only_task(summarise(sourced(result("a", at=berlin_small_hours))))
    assert stats.days[0].day == date(2025, 3, 1)


def test_escalation_reasons_count_every_attempt_that_did_not_settle_and_tiers_count_the_answering_one():
    records = sourced(
        result("a", "escalated", outcomes=("low_confidence", "accepted"), tiers=("small", "frontier")),
        result("b", "escalated", outcomes=("invalid_output", "accepted")),
        result("c", "escalated", outcomes=("truncated", "accepted")),
        result("d", "needs_review", outcomes=("too_large", "low_confidence"), tiers=("small", "frontier")),
        result("e", "failed", outcomes=("error", "error")),
        result("f"),
    )
    total = only_task(summarise(records)).total
    assert total.escalation_reasons == {"low_confidence": 2, "invalid_output": 1, "truncated": 1, "too_large": 1,
                                        "error": 2}
    assert total.tiers == {"frontier": 4, "small": 1, "none": 1}


def test_saving_is_the_counterfactual_minus_the_cost_of_the_items_that_carry_one():
    records = sourced(result("a", cost=0.001, counterfactual=0.010), result("b", cost=0.004, counterfactual=0.010),
                      result("c", cost=0.002, counterfactual=None))  # written before counterfactuals were recorded
    total = only_task(summarise(records)).total
    assert total.cost_usd == pytest.approx(0.007)
    assert (total.priced, total.priced_cost_usd, total.counterfactual_cost_usd) == (2, pytest.approx(0.005),
                                                                                   pytest.approx(0.020))
    assert total.saving_usd == pytest.approx(0.015)
    assert total.saving_share == pytest.approx(0.75)


def test_with_no_counterfactual_at_all_there_is_no_saving_share():
    total = only_task(summarise(sourced(result("a", counterfactual=None)))).total
    assert total.saving_share is None and total.saving_usd == 0.0


def test_latency_p50_and_p95_are_numpys_percentiles_of_the_items():
    latencies = [float(v) for v in range(10, 1010, 10)]
    records = sourced(*(result(f"i{n}", latency_ms=v) for n, v in enumerate(latencies)))
    total = only_task(summarise(records)).total
    assert total.latency_ms == {"p50": np.percentile(latencies, 50), "p95": np.percentile(latencies, 95)}


def test_an_item_in_results_and_review_counts_once_as_its_latest_record():
    waiting = result("a", "needs_review", at=DAY1, outcomes=("low_confidence",), tiers=("small",))
    rerun = result("a", "accepted", at=DAY1 + timedelta(hours=1))
    stats = only_task(summarise(sourced(waiting, rerun, waiting)))
    assert stats.total.volume == 1 and stats.total.statuses["accepted"] == 1


def test_a_reviewed_record_wins_over_a_later_one_of_the_same_item():
    reviewed = result("a", "reviewed", at=DAY1)
    stale_copy_in_review = result("a", "needs_review", at=DAY1 + timedelta(hours=1), outcomes=("low_confidence",))
    stats = only_task(summarise(sourced(stale_copy_in_review, reviewed)))
    assert stats.total.statuses["reviewed"] == 1 and stats.total.volume == 1


def test_the_same_id_from_two_inputs_or_two_tasks_counts_twice():
    records = sourced(result("a")) + sourced(result("a"), source="incoming/ticket/b.jsonl") + sourced(
        result("a", task="receipt"))
    summary = summarise(records)
    assert {s.task: s.total.volume for s in summary.tasks} == {"receipt": 1, "ticket": 2}


def test_live_accuracy_is_the_share_of_agreeing_shadow_pairs_with_the_wilson_interval():
    pairs = [shadow(f"i{n}", agree=n < 17) for n in range(20)] + [shadow("x", agree=None)]  # frontier failed
    accuracy = only_task(summarise([], pairs)).total.live_accuracy
    assert (accuracy.successes, accuracy.n, accuracy.value) == (17, 20, 0.85)
    assert accuracy.interval == wilson_interval(17, 20)


def test_a_shadow_pair_recorded_twice_counts_once_as_its_latest():
    pairs = [shadow("a", agree=False, at=DAY1), shadow("a", agree=True, at=DAY1 + timedelta(minutes=5)),
             shadow("a", agree=True, source="incoming/ticket/b.jsonl")]
    accuracy = only_task(summarise([], pairs)).total.live_accuracy
    assert (accuracy.successes, accuracy.n) == (2, 2)


def test_a_correction_is_ground_truth_for_a_shadow_pair_over_the_frontier():
    pairs = [shadow("a", agree=False, accepted="billing"), shadow("b", agree=True, accepted="billing")]
    corrections = [correction("a", final="billing"), correction("b", final="account")]
    accuracy = only_task(summarise([], pairs, corrections)).total.live_accuracy
    assert (accuracy.successes, accuracy.n) == (1, 2)
    assert only_task(summarise([], pairs)).total.live_accuracy.successes == 1  # without: the frontier's verdicts


def test_a_correction_judges_only_the_pair_of_its_own_input_when_two_inputs_share_an_id():
    pairs = [shadow("1", agree=True, accepted="billing"),
             shadow("1", agree=True, accepted="billing", source="incoming/ticket/b.jsonl")]
    corrections = [correction("1", final="account", source="incoming/ticket/b.jsonl")]
    accuracy = only_task(summarise([], pairs, corrections)).total.live_accuracy
    assert (accuracy.successes, accuracy.n) == (1, 2)  # a.jsonl's item 1 keeps the frontier's verdict


def test_a_correction_recorded_without_its_input_still_judges_the_pair_of_its_id():
    pairs = [shadow("a", agree=True, accepted="billing")]
    corrections = [correction("a", final="account", source=None)]
    assert only_task(summarise([], pairs, corrections)).total.live_accuracy.successes == 0


def test_draft_accuracy_counts_the_reviewed_drafts_a_person_kept():
    corrections = [correction("a", final="billing", draft="billing", decision="accept"),
                   correction("b", final="account", draft="billing"),
                   correction("c", final=None, draft="billing", decision="reject"),
                   correction("d", final="billing", draft=None)]  # nothing drafted: nothing to score
    draft = only_task(summarise([], [], corrections)).total.draft_accuracy
    assert (draft.successes, draft.n) == (1, 3)


def test_the_latest_correction_of_an_item_is_the_one_that_counts():
    corrections = [correction("a", final="account", at=DAY1), correction("a", final="billing", at=DAY2)]
    stats = only_task(summarise([], [], corrections))
    assert [d.day for d in stats.days] == [date(2025, 3, 2)]
    assert stats.total.draft_accuracy.successes == 1


def test_extracted_answers_compare_field_by_field_after_normalising():
    assert same_answer({"total": "$12.50", "date": "01/03/2025", "vendor": "Corner  Cafe"},
                       {"total": "12.5", "date": "2025-03-01", "vendor": "corner cafe"})
    assert not same_answer({"total": "12.50"}, {"total": "12.50", "vendor": "Cafe"})
    assert not same_answer("billing", "account")


def test_the_window_keeps_days_from_since_on_and_records_without_a_finish_are_set_apart():
    records = sourced(result("old", at=DAY1), result("new", at=DAY2), result("undated", at=None))
    pairs = [shadow("old", agree=True, at=DAY1), shadow("new", agree=False, at=DAY2)]
    summary = summarise(records, pairs, since=date(2025, 3, 2))
    stats = only_task(summary)
    assert [d.day for d in stats.days] == [date(2025, 3, 2)]
    assert stats.total.volume == 1 and stats.total.live_accuracy.n == 1
    assert summary.undated == 1


def test_a_task_argument_keeps_that_task_only():
    records = sourced(result("a"), result("b", task="receipt"))
    summary = summarise(records, [shadow("x", True, task="receipt")], task="receipt")
    assert [(s.task, s.total.volume, s.total.live_accuracy.n) for s in summary.tasks] == [("receipt", 1, 1)]


def test_confidence_histograms_hold_every_answer_of_each_tier():
    records = sourced(result("a", "escalated", outcomes=("low_confidence", "accepted"), confidence=0.4),
                      result("b", confidence=0.8, tiers=("small",)))
    confidences = only_task(summarise(records)).confidences
    assert sorted(confidences["small"]) == [0.4, 0.8] and confidences["frontier"] == [0.4]


@pytest.mark.parametrize("name, source", [
    ("ticket/a.jsonl.jsonl", "incoming/ticket/a.jsonl"),  # several items, or their review
    ("ticket/note.txt.json", "incoming/ticket/note.txt"),  # one item
    ("ticket/big.jsonl/part-00003.jsonl", "incoming/ticket/big.jsonl"),  # a part
    ("ticket/big.jsonl/manifest.json", None),  # holds no records
    ("ticket/stray.csv", None),
])
def test_an_output_blob_name_leads_back_to_its_input(name, source):
    found = input_of_output(name)
    assert (found.source if found else None) == source
    if found:
        assert name in {found.result_lines, found.result_single, found.part(3)}
