"""Answering items: the one service the HTTP API, the queue worker and `smallfirst run` each call.

It holds what every entry point does around the cascade, once: the request size check, the batch through the
cascade (from async code, or blocking on an event loop of its own; a first tier that batches, the trained tier on a
classification task, answers the batch's new items in one call: `Cascade.process_batch`), keeping what was paid
for (items answered before are not sent again, and each record is handed on as soon as its item is done), and the
shadow pick.
What differs stays with the caller: the HTTP API refuses an oversized request and answers NoTierError with 503,
the queue worker dead-letters it and shadows only once its results are published, the CLI writes as it goes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from shared.core.cascade import Cascade
from shared.foundation.records import Item, ResultRecord
from shared.foundation.tasks import AnyTask
from shared.pipeline.shadow_pick import send_shadows, shadow_requests


@dataclass(frozen=True)
class Oversized:
    """Why a request is refused whole: too many items, or items too long for the task (`item_ids`)."""

    what: Literal["batch", "item"]
    detail: str
    item_ids: tuple[str, ...] = ()


class AnswerService:
    def __init__(self, cascade: Cascade) -> None:
        self.cascade = cascade

    def oversized(self, task: AnyTask, items: list[Item]) -> Oversized | None:
        """The size check of a request answered while its caller waits. A file's items are not refused whole:
        an item over a tier's budget skips that tier (`run_tier`), and the file's other items are answered."""
        limit = self.cascade.settings.max_batch_items
        if len(items) > limit:
            return Oversized("batch", f"{len(items)} items > {limit}")
        too_long = tuple(i.id for i in items if len(i.text) > task.max_input_chars)
        if too_long:
            return Oversized("item", f"items over {task.max_input_chars} characters", too_long)
        return None

    async def aanswer(self, task: AnyTask, items: list[Item], *, kept: Mapping[str, ResultRecord] | None = None,
                      on_record: Callable[[ResultRecord], None] | None = None) -> list[ResultRecord]:
        """A record per item, in the items' order. Items in `kept` (by id) were paid for already and are not sent
        again; `on_record` sees each new record as soon as its item is done. NoTierError if no tier of the
        task is configured."""
        if not kept:
            return await self.cascade.process_batch(task, items, on_record=on_record)
        fresh = await self.cascade.process_batch(task, [i for i in items if i.id not in kept], on_record=on_record)
        by_id = {**kept, **{r.id: r for r in fresh}}
        return [by_id[item.id] for item in items]

    def answer(self, task: AnyTask, items: list[Item], *, kept: Mapping[str, ResultRecord] | None = None,
               on_record: Callable[[ResultRecord], None] | None = None) -> list[ResultRecord]:
        """`aanswer` from synchronous code, on an event loop of its own (`Cascade.run_on_own_loop`)."""
        return self.cascade.run_on_own_loop(self.aanswer(task, items, kept=kept, on_record=on_record))

    def shadow(self, task: AnyTask, items: list[Item], records: list[ResultRecord], *, source: str,
               send: Callable[[str], Any]) -> int:
        """Put the picked accepted items of `source` on the shadow queue through `send`; how many went."""
        return send_shadows(shadow_requests(self.cascade, task, items, records, source), send)

    async def ashadow(self, task: AnyTask, items: list[Item], records: list[ResultRecord], *, source: str,
                      send: Callable[[str], Any]) -> int:
        """`shadow` from async code: the queue's blocking client is called on a thread, and only if any is picked."""
        requests = shadow_requests(self.cascade, task, items, records, source)
        return await asyncio.to_thread(send_shadows, requests, send) if requests else 0
