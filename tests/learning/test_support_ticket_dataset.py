"""The support-ticket set shipped with the project: its shape, its split, and what a head learns from it."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from shared.learning.training_data import text_hash
from tests.learning.conftest import REPO

LABELS = {"billing", "technical", "account", "other"}
SAMPLES = REPO / "samples" / "support_ticket"


def test_at_least_300_tickets_roughly_balanced_and_split_about_75_25(support_tickets):
    train, dev = support_tickets["train"], support_tickets["dev"]
    assert len(train) + len(dev) >= 300
    assert 0.2 <= len(dev) / (len(train) + len(dev)) <= 0.3
    for rows in (train, dev):
        counts = Counter(r["label"] for r in rows)
        assert set(counts) == LABELS
        assert max(counts.values()) <= 1.2 * min(counts.values())


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
