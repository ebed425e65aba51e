"""The answer service (HTTP batches, blob parts, `smallfirst run`) embeds a request's items for the trained tier in
one call of the real local MiniLM, counted on its own embed_metered."""

from __future__ import annotations

from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.foundation.records import Item
from shared.pipeline.answering import AnswerService
from tests.core.test_batched_trained_tier import DEV, embed_calls, english_ticket  # noqa: F401 (a fixture)


def test_a_request_embeds_its_new_items_in_one_call_and_kept_items_not_at_all(catalog, embed_calls):  # noqa: F811
    task = english_ticket(catalog, tiers=["trained"])  # support_ticket on its MiniLM head
    items = [Item(id=row["id"], text=row["text"]) for row in DEV[:12]]
    answers = AnswerService(Cascade(Settings.from_env({}), tasks=catalog))
    first = answers.answer(task, items[:4])
    assert embed_calls == [4]
    records = answers.answer(task, items, kept={record.id: record for record in first})
    assert embed_calls == [4, 8]  # the eight new items together; the four kept were paid for already
    assert [r.id for r in records] == [item.id for item in items]
    assert records[:4] == first
    alone = [answers.cascade.process(task, item) for item in items[4:]]
    assert [(r.status, r.answer) for r in records[4:]] == [(r.status, r.answer) for r in alone]
