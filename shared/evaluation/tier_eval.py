"""`smallfirst eval`: every labelled item through each named tier separately (not the cascade).

Each (item, tier) pair is run by `run_tier_batch`, the one function the cascade calls, and recorded with the gold
answer as an EvalRecord: a tier that batches (the trained tier on a classification task) is asked for up to
`EVAL_BATCH_ITEMS` items in one call, as the cascade's first tier is; any other tier one item at a time. Runs are
resumable: pairs already in the output file are skipped.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.core.cascade import Cascade
from shared.foundation.records import Item
from shared.core.run_tier import run_tier_batch
from shared.foundation.text_files import RowText, decode_text, jsonl_rows
from shared.foundation.tasks import AnyTask, ClassificationTask
from shared.errors import ConfigError, InputError
from shared.evaluation.run_analysis import EvalRecord, done_pairs


class LabelledItem(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)  # datasets often number their rows
    id: str = Field(min_length=1)
    text: RowText
    label: str | None = None
    expected: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _has_gold(self) -> "LabelledItem":
        if self.label is None and self.expected is None:
            raise ValueError("a row needs its gold answer: label (classification) or expected (extraction)")
        return self


def load_labelled(path: Path, sample: int | None = None, seed: int = 0) -> list[LabelledItem]:
    """The rows of a labelled .jsonl; with `sample`, a seeded random sample of that many (a different
    sample size gives a different sample, not a prefix of a larger one). A row that is not a labelled item, or
    repeats an id (a run is resumed by id), is an InputError naming the file and line."""
    items: list[LabelledItem] = []
    first_line: dict[str, int] = {}
    for number, item in jsonl_rows(decode_text(path.read_bytes(), str(path)), LabelledItem, str(path),
                                   'a labelled row {"id","text","label"|"expected"}'):
        if (earlier := first_line.setdefault(item.id, number)) != number:
            raise InputError("duplicate_id", f"{path}:{number}: id {item.id!r} repeats line {earlier}")
        items.append(item)
    if sample is not None and sample < len(items):
        items = random.Random(seed).sample(items, sample)
    return items


def check_gold(task: AnyTask, items: list[LabelledItem], where: str) -> list[str]:
    """InputError naming `where` (the data file) if a row lacks the gold answer `task` is scored on; the labels no
    tier can get right (not the task's), to be warned about."""
    gold = "label" if isinstance(task, ClassificationTask) else "expected"
    if missing := [item.id for item in items if getattr(item, gold) is None]:
        raise InputError("no_gold", f"{where}: {len(missing)} rows have no {gold!r}, which {task.kind} task "
                         f"{task.name} is scored on (first: id {missing[0]!r})")
    if isinstance(task, ClassificationTask):
        return sorted({item.label for item in items if item.label not in task.allowed_labels})
    return []


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1)


EVAL_BATCH_ITEMS = 64  # per call of a tier that batches: few calls, and records still written as the run goes


def evaluate_many(cascade: Cascade, task: AnyTask, items: Sequence[LabelledItem], tier_name: str) -> list[EvalRecord]:
    """The tier's record of each item, in their order, from one `run_tier_batch` call."""
    attempts = run_tier_batch(cascade.tiers.get(tier_name), task, [Item(id=item.id, text=item.text) for item in items])
    return [EvalRecord(**attempt.model_dump(), task=task.name, kind=task.kind, id=item.id,
                       gold=item.label if isinstance(task, ClassificationTask) else item.expected)
            for item, attempt in zip(items, attempts, strict=True)]


async def run_eval(
    cascade: Cascade,
    task: AnyTask,
    items: Iterable[LabelledItem],
    tiers: list[str],
    out: Path,
    concurrency: int,
    on_done: Callable[[EvalRecord], None] = lambda record: None,
) -> int:
    """Evaluate the pairs not yet in `out`, appending each record as it completes; returns how many ran."""
    unknown = [t for t in tiers if t not in cascade.settings.tiers]
    if unknown:
        raise ConfigError(f"tiers not configured: {', '.join(unknown)}")
    skip = done_pairs(out, task.name)
    items = list(items)
    todo: list[tuple[list[LabelledItem], str]] = []  # each one call of a tier
    for tier in tiers:
        pending = [item for item in items if (item.id, tier) not in skip]
        size = EVAL_BATCH_ITEMS if cascade.tiers.get(tier).batches(task) else 1
        todo += [(pending[start:start + size], tier) for start in range(0, len(pending), size)]
    limit = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    out.parent.mkdir(parents=True, exist_ok=True)
    cut_short = out.exists() and out.stat().st_size > 0 and _last_byte(out) != b"\n"  # an interrupted run
    with out.open("a", encoding="utf-8") as sink:
        if cut_short:  # the next record starts on a line of its own, not glued to the broken one
            sink.write("\n")

        async def one(batch: list[LabelledItem], tier: str) -> None:
            async with limit:
                records = await loop.run_in_executor(None, evaluate_many, cascade, task, batch, tier)
            for record in records:
                sink.write(record.model_dump_json() + "\n")
                on_done(record)
            sink.flush()  # an interrupted run keeps every finished pair

        await asyncio.gather(*(one(batch, tier) for batch, tier in todo))
    return sum(len(batch) for batch, _ in todo)
