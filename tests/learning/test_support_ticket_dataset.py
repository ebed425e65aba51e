"""The support-ticket set shipped with the project: its shape, its split, and what a head learns from it."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from shared.learning.training_data import text_hash
from tests.learning.conftest import REPO

LABELS = {"billing", "technical", "account", "other"}
SAMPLES = REPO / "samples" / "support_ticket"


def test_dev_is_balanced_and_train_has_every_label_with_the_catch_all_widest(support_tickets):
    train, dev = support_tickets["train"], support_tickets["dev"]
    assert len(train) >= 400 and len(dev) >= 80
    dev_counts, train_counts = Counter(r["label"] for r in dev), Counter(r["label"] for r in train)
    assert set(dev_counts) == set(train_counts) == LABELS
    assert max(dev_counts.values()) <= 1.2 * min(dev_counts.values())
    in_scope = [train_counts[label] for label in LABELS - {"other"}]
    assert max(in_scope) <= 1.2 * min(in_scope) and train_counts["other"] > max(in_scope)  # a real inbox's breadth


def test_rows_have_unique_ids_and_no_ticket_is_in_both_splits(support_tickets):
    rows = support_tickets["train"] + support_tickets["dev"]
    assert all(set(r) == {"id", "text", "label"} and r["text"].strip() for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({text_hash(r["text"]) for r in rows}) == len(rows)


def test_a_head_trained_on_train_is_right_on_at_least_88_percent_of_dev(support_head, support_data):
    _, _, X_dev, y_dev = support_data
    assert np.mean(np.array(support_head.predict(X_dev)) == np.array(y_dev)) >= 0.88


def test_the_readme_demo_tickets_are_all_routed_right(support_head, embedder):
    expected = {"double-charge.txt": "billing", "export-crash.txt": "technical", "locked-out.json": "account",
                "inbox-1": "billing", "inbox-2": "technical", "inbox-3": "account", "inbox-4": "other"}
    texts = {"double-charge.txt": (SAMPLES / "double-charge.txt").read_text(encoding="utf-8"),
             "export-crash.txt": (SAMPLES / "export-crash.txt").read_text(encoding="utf-8"),
             "locked-out.json": json.loads((SAMPLES / "locked-out.json").read_text(encoding="utf-8"))["text"]}
    for line in (SAMPLES / "inbox.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        texts[row["id"]] = row["text"]
    names = list(expected)
    predicted = support_head.predict(embedder.embed([texts[n] for n in names]))
    assert dict(zip(names, predicted)) == expected


def test_the_tuning_set_has_every_label_and_kind_and_shares_no_ticket_with_training_or_the_dev_sets(support_tickets):
    from tests.learning.conftest import SUPPORT_TICKETS, read_jsonl

    tuning = read_jsonl(SUPPORT_TICKETS / "tuning.jsonl")
    others = support_tickets["train"] + support_tickets["dev"] + read_jsonl(
        SUPPORT_TICKETS / "multilingual_dev.jsonl") + read_jsonl(SUPPORT_TICKETS / "shifted_dev.jsonl")
    assert len(tuning) >= 400 and {r["label"] for r in tuning} == LABELS
    assert {r["kind"] for r in tuning} == {"inbox", "language", "phrasing", "domain", "mixed"}
    assert len({r["id"] for r in tuning + others}) == len(tuning) + len(others)
    seen = {text_hash(r["text"]) for r in others}
    assert not [r["id"] for r in tuning if text_hash(r["text"]) in seen]
    assert len({text_hash(r["text"]) for r in tuning}) == len(tuning)
