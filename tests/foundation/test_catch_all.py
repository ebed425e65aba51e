"""A classification task may name one of its labels as its catch-all; the task file is refused otherwise."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from shared.foundation.tasks import ClassificationTask
from tests.conftest import REPO


def ticket(**fields) -> ClassificationTask:
    return ClassificationTask(name="ticket", instruction="Route the ticket.", labels=["billing", "other"], **fields)


def test_catch_all_names_one_of_the_tasks_labels():
    assert ticket(catch_all="other").catch_all == "other"
    assert ticket().catch_all is None


def test_catch_all_that_is_not_a_label_is_refused_with_the_labels_listed():
    with pytest.raises(ValidationError, match=r"catch_all 'misc' is not one of the labels \(billing, other\)"):
        ticket(catch_all="misc")


def test_catch_all_beside_a_none_label_is_refused():
    with pytest.raises(ValidationError, match="declare one of them"):
        ticket(catch_all="other", allow_none=True, none_label="none")


def test_support_ticket_declares_other_as_its_catch_all():
    task = ClassificationTask.model_validate(yaml.safe_load((REPO / "tasks/support_ticket.yaml").read_text()))
    assert task.catch_all == "other"
