"""Logic written once for the blocking and the async path: a *plan* is a generator that yields what it needs
done (a tier call, a round of requests), receives the result and finally returns its value. `drive` runs a
plan with a blocking step, `adrive` with an awaited one, so both paths share every decision."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Coroutine, Generator, Iterable, TypeVar

Need = TypeVar("Need")
Result = TypeVar("Result")
Value = TypeVar("Value")


def drive(plan: Generator[Need, Result, Value], step: Callable[[Need], Result]) -> Value:
    try:
        need = next(plan)
        while True:
            need = plan.send(step(need))
    except StopIteration as done:
        return done.value
    finally:
        plan.close()  # a step that raised leaves the plan suspended: unwind it here, in this context


async def adrive(plan: Generator[Need, Result, Value], step: Callable[[Need], Awaitable[Result]]) -> Value:
    try:
        need = next(plan)
        while True:
            need = plan.send(await step(need))
    except StopIteration as done:
        return done.value
    finally:
        plan.close()


async def gather_all(coroutines: Iterable[Coroutine[object, object, Result]]) -> list[Result]:
    """Run them as tasks; results in order. The first failure cancels the others and is raised as itself
    (not as an ExceptionGroup), as a blocking loop over the same calls would raise it."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
