"""What an item would have cost had the frontier answered it alone: the baseline every saving is measured against.

When the frontier did answer, its own token counts are used. Otherwise the tokens are estimated the same way
for every tier that answered (the trained tier counts no tokens at all): the frontier's prompt for the item
(shared/core/prompts.py) and the answer as JSON, at the task's characters-per-token estimate. The price is
the task's frontier's (`policy.frontier_of`), or gpt-4o's listed price (shared/core/prices.py) when the task has
no configured frontier; an item whose frontier has no known price has no counterfactual.
"""

from __future__ import annotations

import json
from typing import Sequence

from shared.core.backends import Backend
from shared.core.config import Settings, TierConfig
from shared.core.policy import frontier_of
from shared.core.prompts import classification_messages, extraction_messages
from shared.foundation.records import Attempt, Item
from shared.foundation.tasks import AnyTask, ClassificationTask


def reference_frontier(task: AnyTask, settings: Settings) -> TierConfig:
    """The frontier the counterfactual is priced at: the task's, else an Azure OpenAI gpt-4o."""
    frontier = frontier_of(task, settings.tiers)
    return settings.tiers[frontier] if frontier else TierConfig(name="frontier", role="frontier",
                                                                backend=Backend.AZURE_OPENAI, model="gpt-4o")


def estimated_frontier_tokens(task: AnyTask, item: Item, answer: object) -> tuple[int, int]:
    if isinstance(task, ClassificationTask):
        messages = classification_messages(task, item.text, json_answer=True)
    else:
        messages = extraction_messages(task, item.text, schema_in_prompt=False)
    prompt = "".join(message["content"] for message in messages)
    return task.estimate_tokens(prompt), task.estimate_tokens(json.dumps(answer, ensure_ascii=False))


def counterfactual_cost_usd(task: AnyTask, item: Item, attempts: Sequence[Attempt], answer: object,
                            frontier: TierConfig) -> float | None:
    """USD for the frontier alone on `item`: its real usage if it was called, else an estimate; None where the
    frontier's price is unknown (no saving is claimed from a price of zero: stats counts the item as unpriced)."""
    if frontier.price_source is None:
        return None
    called = [a for a in attempts if a.tier == frontier.name and a.tokens_in > 0]
    if called:
        return frontier.cost_usd(called[-1].tokens_in, called[-1].tokens_out)
    return frontier.cost_usd(*estimated_frontier_tokens(task, item, answer))
