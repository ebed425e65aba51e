"""The champion/challenger gate, both ways, with real heads on the support-ticket dev split."""

from __future__ import annotations

import json

import pytest

from shared.learning.classifier import EmbeddingClassifier
from shared.learning.promotion import promotion_gate, record_decision
from shared.learning.stores import LocalFolderStore
from tests.learning.conftest import per_label

SLICE = "tasks/data/support_ticket/dev.jsonl"


@pytest.fixture(scope="module")
def weak_head(embedder, support_tickets):
    """Three tickets per label: a head clearly worse than one trained on all 240."""
    rows = per_label(support_tickets["train"], {"billing", "technical", "account", "other"}, 3)
    return EmbeddingClassifier().fit(embedder.embed([r["text"] for r in rows]), [r["label"] for r in rows])


def overconfident(head: EmbeddingClassifier) -> EmbeddingClassifier:
    """The same weights (same answers) with a far too low temperature: confidences near 1 even when wrong."""
    return EmbeddingClassifier.restore(
        classes=head.classes_, coef=head.coef_, intercept=head.intercept_, temperature=0.05, C=head.C_,
        none_label=None, oos_threshold=None, cv_metrics=head.cv_metrics_, max_inscope_reject=0.05,
    )


def gate(candidate, active, support_data, **kwargs):
    _, _, X_dev, y_dev = support_data
    return promotion_gate(task="support_ticket", candidate=candidate, candidate_version="cand",
                          active=active, active_version="act" if active else None, X=X_dev, gold=y_dev,
                          slice_source=SLICE, **kwargs)


def test_a_better_candidate_is_promoted(support_head, weak_head, support_data):
    decision = gate(support_head, weak_head, support_data)
    assert decision.promote and decision.reason.startswith("not worse")
    assert decision.candidate.accuracy > decision.active.accuracy
    assert decision.slice_size == 80 and decision.slice_source == SLICE


def test_a_worse_candidate_is_not_promoted_and_the_reason_says_accuracy(support_head, weak_head, support_data):
    decision = gate(weak_head, support_head, support_data)
    assert not decision.promote and "accuracy" in decision.reason
    drop = decision.active.accuracy - decision.candidate.accuracy
    assert drop > decision.accuracy_tolerance > 0


def test_the_accuracy_tolerance_is_z_standard_errors_of_the_paired_difference(support_head, weak_head, support_data):
    narrow = gate(weak_head, support_head, support_data, z=1.0)
    wide = gate(weak_head, support_head, support_data, z=10.0, max_ece_increase=1.0)
    assert wide.accuracy_tolerance == pytest.approx(10 * narrow.accuracy_tolerance)
    assert not narrow.promote and wide.promote


def test_equal_answers_with_worse_calibration_are_not_promoted(support_head, support_data):
    decision = gate(overconfident(support_head), support_head, support_data)
    assert decision.candidate.accuracy == decision.active.accuracy
    assert not decision.promote and "ECE" in decision.reason


def test_the_same_head_is_not_worse_than_itself(support_head, support_data):
    decision = gate(support_head, support_head, support_data)
    assert decision.promote and decision.accuracy_tolerance == 0.0


def test_the_first_head_is_promoted_when_there_is_no_active_one(weak_head, support_data):
    decision = gate(weak_head, None, support_data)
    assert decision.promote and decision.reason == "no active head" and decision.active is None


def test_a_slice_too_small_to_judge_promotes_nothing(support_head, weak_head, support_data):
    decision = gate(support_head, weak_head, support_data, min_slice=100)
    assert not decision.promote and "too small" in decision.reason


def test_the_decision_is_recorded_in_the_store_beside_the_heads(tmp_path, support_head, weak_head, support_data):
    store = LocalFolderStore(tmp_path)
    key = record_decision(store, gate(support_head, weak_head, support_data))
    assert key.startswith("support_ticket/decisions/") and key.endswith(".json")
    saved = json.loads(store.read(key))
    assert saved["promote"] is True and saved["candidate_version"] == "cand" and saved["active_version"] == "act"


def test_labels_that_are_noise_promote_no_head_however_well_it_is_calibrated(embedder, support_head, support_data):
    import random

    X_train, y_train, X_dev, y_dev = support_data
    shuffled = lambda labels: random.Random(0).sample(list(labels), len(labels))  # noqa: E731
    noise_head = EmbeddingClassifier().fit(X_train, shuffled(y_train))
    for active in (support_head, None):
        decision = promotion_gate(task="support_ticket", candidate=noise_head, candidate_version="cand",
                                  active=active, active_version="act" if active else None, X=X_dev,
                                  gold=shuffled(y_dev), slice_source=SLICE)
        assert not decision.promote and "no better than chance" in decision.reason


class Answers:
    """A head that gives fixed answers, at confidence 0.9: the gate reads only its labels and confidences."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels

    def predict_with_confidence(self, X, texts=None):
        from types import SimpleNamespace

        import numpy as np

        return SimpleNamespace(labels=self.labels, confidence=np.full(len(self.labels), 0.9))


def test_on_a_slice_one_label_dominates_a_head_that_learned_passes_and_one_answering_that_label_does_not():
    import numpy as np

    gold = ["a"] * 90 + ["b"] * 10
    learned = Answers(["a"] * 90 + ["b"] * 3 + ["a"] * 7)  # 0.93: above the 0.876 of chance, below 0.9 + 1 SE
    majority = Answers(["a"] * 100)  # 0.90: exactly chance
    for candidate, promoted in ((learned, True), (majority, False)):
        decision = promotion_gate(task="t", candidate=candidate, candidate_version="cand", active=None,
                                  active_version=None, X=np.zeros((100, 1)), gold=gold, slice_source="s")
        assert decision.promote is promoted, decision.reason
