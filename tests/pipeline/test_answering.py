"""The answer service every entry point calls: the size check, kept records, the shadow pick.

The small tier is an OpenAI-compatible server on loopback (tests/azure_wire.py) that records each request.
"""

from __future__ import annotations

import asyncio

import pytest

from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.foundation.records import Item
from shared.pipeline.answering import AnswerService
from tests.azure_wire import AzureWireServer, Scripted, chat_completion
from tests.conftest import write_ticket_task

TOKENS = [('{"label":"', -0.01), ("billing", -0.01), ('"}', -0.01)]


@pytest.fixture
def small():
    with AzureWireServer() as server:
        server.default = lambda request: Scripted(body=chat_completion('{"label":"billing"}', tokens=TOKENS))
        yield server


def service(small, tmp_path, **settings: str) -> AnswerService:
    env = {"SMALLFIRST_SMALL_BACKEND": "openai_compatible", "SMALLFIRST_SMALL_ENDPOINT": small.url,
           "SMALLFIRST_SMALL_LOGPROBS": "true", "SMALLFIRST_TASKS_DIR": str(write_ticket_task(tmp_path)),
           **{f"SMALLFIRST_{key}": value for key, value in settings.items()}}
    return AnswerService(Cascade(Settings.from_env(env)))


def sent_texts(small) -> list[str]:
    return sorted(request.body["messages"][-1]["content"] for request in small.requests)


def test_kept_items_are_not_sent_again_and_records_come_back_in_item_order(small, tmp_path):
    answers = service(small, tmp_path)
    task = answers.cascade.tasks.get("ticket")
    first = answers.answer(task, [Item(id="b", text="refund the duplicate charge")])
    seen = []
    items = [Item(id="a", text="my invoice is wrong"), Item(id="b", text="refund the duplicate charge"),
             Item(id="c", text="charged twice")]
    records = answers.answer(task, items, kept={"b": first[0]}, on_record=lambda record: seen.append(record.id))
    assert [r.id for r in records] == ["a", "b", "c"]
    assert records[1] is first[0]
    assert sorted(seen) == ["a", "c"]  # each new record handed on; the kept one was paid for before
    assert sent_texts(small) == ["charged twice", "my invoice is wrong", "refund the duplicate charge"]


def test_the_async_path_answers_the_same_items_as_the_blocking_one(small, tmp_path):
    answers = service(small, tmp_path)
    task = answers.cascade.tasks.get("ticket")
    items = [Item(id=str(n), text=f"charged twice for order {n}") for n in range(3)]
    records = asyncio.run(answers.aanswer(task, items))
    assert [(r.id, r.status, r.answer) for r in records] == [(str(n), "accepted", "billing") for n in range(3)]


def test_a_request_over_the_batch_limit_is_refused_whole_with_the_count(small, tmp_path):
    answers = service(small, tmp_path, MAX_BATCH_ITEMS="2")
    task = answers.cascade.tasks.get("ticket")
    oversized = answers.oversized(task, [Item(id=str(n), text="x") for n in range(3)])
    assert oversized is not None and (oversized.what, oversized.detail) == ("batch", "3 items > 2")
    assert answers.oversized(task, [Item(id=str(n), text="x") for n in range(2)]) is None


def test_a_request_with_items_over_the_tasks_character_limit_names_those_items(small, tmp_path):
    answers = service(small, tmp_path)
    task = answers.cascade.tasks.get("ticket")
    long = "x" * (task.max_input_chars + 1)
    oversized = answers.oversized(task, [Item(id="short", text="x"), Item(id="long", text=long)])
    assert oversized is not None and oversized.what == "item" and oversized.item_ids == ("long",)
    assert small.requests == []  # a size check, not a call


def test_shadow_sends_the_picked_accepted_items_and_nothing_at_fraction_zero(small, tmp_path):
    items = [Item(id=str(n), text=f"charged twice for order {n}") for n in range(4)]
    sent: list[str] = []
    off = service(small, tmp_path / "off")
    task = off.cascade.tasks.get("ticket")
    records = off.answer(task, items)
    assert off.shadow(task, items, records, source="s", send=sent.append) == 0 and sent == []
    # The ticket task has no frontier tier: with one configured and every item picked, each accepted item goes.
    on = service(small, tmp_path / "on", SHADOW_FRACTION="1", FRONTIER_BACKEND="openai_compatible",
                 FRONTIER_ENDPOINT=small.url)
    task = on.cascade.tasks.get("ticket").model_copy(update={"tiers": ["small", "frontier"]})
    assert on.shadow(task, items, records, source="s", send=sent.append) == 4
    assert asyncio.run(on.ashadow(task, items, records, source="s", send=sent.append)) == 4
    assert len(sent) == 8
