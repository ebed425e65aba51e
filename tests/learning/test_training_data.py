"""Training data from labelled files, frontier results and corrections: provenance, de-duplication, no self-training."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from shared.foundation.records import CorrectionRecord
from shared.learning.training_data import (
    LabelledExample,
    TrainingSet,
    examples_from_corrections,
    examples_from_results,
    read_extraction_jsonl,
    read_labelled_jsonl,
    text_hash,
)

FRONTIER = {"frontier"}
LABELS = {"billing", "technical", "account", "other"}


def record(item_id: str, tier: str, answer: str, *, status: str = "escalated", task: str = "support_ticket",
           attempt_answer: str | None = None) -> dict:
    """A result record shaped like shared/foundation/records.py's ResultRecord: the trained tier was unsure, then ``tier`` answered."""
    return {
        "id": item_id, "task": task, "status": status, "answer": answer, "confidence": 0.9, "tier": tier,
        "attempts": [
            {"tier": "trained", "outcome": "low_confidence", "answer": "other", "confidence": 0.4},
            {"tier": tier, "outcome": "accepted", "answer": attempt_answer or answer, "confidence": 0.9},
        ],
        "latency_ms": 12.0, "cost_usd": 0.001,
    }


def test_labelled_jsonl_rows_become_gold_examples_with_their_ids(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"id": "t1", "text": "Refund please", "label": "billing"}\n\n'
                    '{"id": "t2", "text": "App crashes", "label": "technical"}\n', encoding="utf-8")
    examples = read_labelled_jsonl(path)
    assert [(e.label, e.provenance, e.source) for e in examples] == [("billing", "gold", "t1"),
                                                                     ("technical", "gold", "t2")]


def test_a_malformed_row_names_the_file_line_and_field_for_labelled_and_extraction_data(tmp_path):
    from shared.errors import InputError

    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1, "text": "ok", "label": "billing"}\n{"id": "t2", "text": "no label"}\n')
    with pytest.raises(InputError, match="bad.jsonl:2: not a labelled row .*label: Field required"):
        read_labelled_jsonl(path)
    path.write_text('{"id": 1, "text": "ok", "expected": {}}\n\n{"id": "t2", "text": "x", "expected": [1]}\n')
    with pytest.raises(InputError, match="bad.jsonl:3: not a labelled row .*expected: Input should be an object"):
        read_extraction_jsonl(path)
    path.write_text('{"id": "t1", "text": " \\n \\n", "expected": {"total": "5.00"}}\n')  # lines, all blank
    with pytest.raises(InputError, match="bad.jsonl:1: not a labelled row .*text: Value error, the text is blank"):
        read_extraction_jsonl(path)
    path.write_text('{"id": "t1", "text": "   ", "label": "billing"}\n')
    with pytest.raises(InputError, match="bad.jsonl:1: not a labelled row .*text: Value error, the text is blank"):
        read_labelled_jsonl(path)


def test_numbered_rows_of_training_data_are_read_with_their_number_as_id(tmp_path):
    path = tmp_path / "numbered.jsonl"
    path.write_text('{"id": 7, "text": "Refund please", "label": "billing"}\n', encoding="utf-8")
    assert [e.source for e in read_labelled_jsonl(path)] == ["7"]
    path.write_text('{"id": 8, "text": "TOTAL 5.00", "expected": {"total": "5.00"}}\n', encoding="utf-8")
    assert [r.id for r in read_extraction_jsonl(path)] == ["8"]


def test_only_answers_accepted_from_a_frontier_tier_are_used():
    texts = {f"i{n}": f"ticket text {n}" for n in range(7)}
    records = [
        record("i0", "frontier", "billing"),                            # used
        record("i1", "trained", "billing", status="accepted"),          # the trained tier's own answer: never
        record("i2", "small", "technical", status="escalated"),         # another small tier: not frontier
        record("i3", "frontier", "billing", status="needs_review"),     # nobody accepted it
        record("i4", "frontier", "billing", attempt_answer="account"),  # final answer not what the tier said
        record("i5", "frontier", "refunds"),                            # not a label of the task
        record("i6", "frontier", "account", task="receipt"),            # another task
        record("missing", "frontier", "other"),                         # no text to learn from
    ]
    examples, report = examples_from_results(records, texts, task="support_ticket", frontier_tiers=FRONTIER,
                                             allowed_labels=LABELS)
    assert [(e.text, e.label, e.provenance) for e in examples] == [("ticket text 0", "billing", "frontier")]
    assert report.used == 1
    assert report.skipped == {
        "not answered by a frontier tier": 2, "status needs_review": 1,
        "no accepted frontier attempt with that answer": 1, "answer is not an allowed label": 1,
        "other task": 1, "no text for the item": 1,
    }


def test_result_records_may_be_objects_with_attributes_as_well_as_dicts():
    as_object = json.loads(json.dumps(record("i0", "frontier", "billing")),
                           object_hook=lambda d: SimpleNamespace(**d))
    examples, _ = examples_from_results([as_object], {"i0": "text"}, task="support_ticket", frontier_tiers=FRONTIER)
    assert [(e.label, e.provenance) for e in examples] == [("billing", "frontier")]


def test_corrections_become_correction_examples_of_their_final_answer():
    at = datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)
    corrections = [
        CorrectionRecord(task="support_ticket", id="i1", text="Locked out", final_answer="account",
                         draft_answer="technical", by="ana", at=at),
        {"task": "support_ticket", "id": "i2", "text": "x", "final_answer": {"label": "billing"}, "by": "ana",
         "at": at.isoformat()},
    ]
    examples, report = examples_from_corrections(corrections, task="support_ticket", allowed_labels=LABELS)
    assert [(e.text, e.label, e.provenance) for e in examples] == [("Locked out", "account", "correction")]
    assert "ana@2025-03-01T09:30:00+00:00:i1" == examples[0].source
    assert report.skipped == {"answer is not an allowed label": 1}


def test_duplicates_by_normalised_text_keep_the_most_trusted_provenance():
    text = "I was charged twice"
    examples = [
        LabelledExample(text=text, label="billing", provenance="gold"),
        LabelledExample(text="i WAS  charged\ttwice ", label="other", provenance="frontier"),  # same text, less trusted
        LabelledExample(text="Another ticket", label="technical", provenance="frontier"),
        LabelledExample(text="another ticket", label="account", provenance="correction"),  # overrides the frontier
        LabelledExample(text="ANOTHER TICKET", label="other", provenance="gold"),  # less trusted than the correction
    ]
    training = TrainingSet(examples)
    chosen = {e.text_hash: (e.label, e.provenance) for e in training.examples}
    assert chosen == {text_hash(text): ("billing", "gold"), text_hash("another ticket"): ("account", "correction")}
    assert training.disagreements == 2  # both texts were given several labels
    assert TrainingSet(examples[:1] + examples[:1] + examples[2:3]).disagreements == 0  # a repeat is no disagreement


def test_between_equal_provenances_the_later_example_wins():
    examples = [LabelledExample(text="Same", label="billing", provenance="frontier"),
                LabelledExample(text="same", label="technical", provenance="frontier")]
    assert TrainingSet(examples).labels == ["technical"]


def test_the_data_hash_ignores_order_and_provenance_but_not_labels():
    a = LabelledExample(text="one", label="billing", provenance="gold")
    b = LabelledExample(text="two", label="other", provenance="frontier")
    assert TrainingSet([a, b]).sha256() == TrainingSet([b, a]).sha256()
    assert TrainingSet([a, b]).sha256() == TrainingSet([a, b.model_copy(update={"provenance": "gold"})]).sha256()
    assert TrainingSet([a, b]).sha256() != TrainingSet([a, b.model_copy(update={"label": "billing"})]).sha256()


def test_summary_counts_provenance_and_labels(tmp_path):
    gold = [LabelledExample(text=f"gold {i}", label="billing", provenance="gold") for i in range(3)]
    frontier = [LabelledExample(text="frontier 1", label="other", provenance="frontier")]
    summary = TrainingSet(gold + frontier).summary()
    assert summary.size == 4
    assert summary.by_provenance == {"frontier": 1, "gold": 3}
    assert summary.by_label == {"billing": 3, "other": 1}
    assert json.loads(summary.model_dump_json())["sha256"] == TrainingSet(gold + frontier).sha256()
