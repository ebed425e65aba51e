"""Baselines for the embedded tier's label scoring, which walks a prefix tree of the labels' tokens.

- `scores_from_scratch`: the naive reference. A cold cache per label: the whole prompt, then the label.
- `scores_prompt_once`: the fair baseline. The prompt is decoded once (as any prefix cache would keep it),
  then each label's tokens are decoded after it, one label at a time, with no sharing between labels.

Both score a label as the tier does (its tokens, then any end-of-generation token), so the tests check the
tier against them and the benchmark compares like with like.
"""

from __future__ import annotations

from shared.foundation.tasks import ClassificationTask
from shared.core.tiers.embedded import EmbeddedTier
from shared.core.tiers.llama_session import log_softmax


def _label_score(tier: EmbeddedTier, prompt_logits, label: str) -> float:
    session = tier.session
    tokens = session.tokenize(label)
    rows = [prompt_logits, *session.append(tokens, set(range(len(tokens))))]
    logp = sum(float(log_softmax(row)[token]) for row, token in zip(rows, tokens))
    return logp + tier.end_of_label_logprob(log_softmax(rows[-1]))


def scores_from_scratch(tier: EmbeddedTier, task: ClassificationTask, text: str,
                        labels: list[str] | None = None) -> dict[str, float]:
    scores: dict[str, float] = {}
    prompt = tier.classification_prompt(task, text)
    for label in labels or task.allowed_labels:
        tier.session.truncate(0)
        logits = tier.session.append(prompt, {len(prompt) - 1})[0]
        scores[label] = _label_score(tier, logits, label)
    return scores


def scores_prompt_once(tier: EmbeddedTier, task: ClassificationTask, text: str,
                       labels: list[str] | None = None) -> dict[str, float]:
    scores: dict[str, float] = {}
    prompt = tier.classification_prompt(task, text)
    logits = tier.session.prefill(prompt)
    for label in labels or task.allowed_labels:
        scores[label] = _label_score(tier, logits, label)
        tier.session.truncate(len(prompt))
    return scores
