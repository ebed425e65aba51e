"""The trained tier: an embedding classifier that learns from labels and from the frontier's answers.

It embeds the item with its task's embedder (the local int8 MiniLM through onnxruntime; for a task that declares
other languages the local USE-m in numpy; or an Azure OpenAI embeddings deployment: shared/learning/serving.py)
and answers with the task's active head, whose confidence is a temperature-scaled probability, or with a novelty
calibrator the chance the answer is right (shared/learning/novelty.py). The active head is the newest
activation in the head store (`heads_store`: the local `heads_dir`, or a blob container, where scheduled retraining
activates heads), else the task file's `trained_head` in `heads_dir`. Which one is active is checked again at most
every `heads_refresh_s`, so a newly activated head answers without a restart. A task with no head yet is answered
zero-shot (cosine similarity to each label's name, description and examples) with deliberately low confidence, so
its items escalate. An extraction task is answered by its head, a line tagger (`shared/learning/line_tagger.py`:
per field, the calibrated probability of the line(s) it reads the value from); with no head it raises TierError,
so the item escalates. Its answers carry the tokens the embedder read, priced at the tier's input price (by default
free with the local MiniLM, text-embedding-3-small's list price with an Azure OpenAI deployment). A classification
task's batch is answered in one embedder call and one head call (`answer_many`, which the cascade and `smallfirst
eval` use); each item's answer is what it would be alone.

core never imports learning. The embedder, the head stores and the heads themselves are the tier's `heads`, a
`TrainedHeads` (shared/learning/serving.py) that the backend registry's spec for `trained` names by import path
(shared/core/backends.py, `heads`): the one seam between core and learning. This module keeps which head is active,
how often that is checked, and what the tier answers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Sequence

from shared.core.backends import BACKENDS, Backend
from shared.core.tiers.base import Tier, TierAnswer
from shared.errors import InvalidOutputError, TierError
from shared.foundation.tasks import AnyTask, ClassificationTask, ExtractionTask

log = logging.getLogger(__name__)


class TrainedTier(Tier):
    def __init__(self, config, clock: Callable[[], float] = time.monotonic, heads: Any = None) -> None:
        """`heads`: the embedder and head stores (a learning `TrainedHeads`); by default the one the backend's
        spec names, built from `config`."""
        super().__init__(config)
        self.heads = heads if heads is not None else BACKENDS[Backend.TRAINED].heads_type()(config)
        self._clock = clock
        self._heads_lock = threading.Lock()  # one check of the active head, and one load per head, at a time
        self._loaded: dict[tuple[str, str | None], tuple[object, str]] = {}  # (task, head store + version)
        self._active: dict[str, tuple[float, str | None, Any]] = {}  # task -> (checked, file's, active head)

    @property
    def embedder(self) -> Any:
        return self.heads.embedder

    @property
    def head_store(self) -> Any:
        """Where heads are saved and activated (`heads_store`)."""
        return self.heads.head_store

    @property
    def task_file_store(self) -> Any:
        """The heads that ship with the app (`heads_dir`), where task files' `trained_head` versions are."""
        return self.heads.task_file_store

    def active_head(self, task: AnyTask) -> Any:
        """The task's active head, checked again in the store once `heads_refresh_s` has passed (or when the
        task file names another version). If the store cannot be read, the head in use stays in use."""
        from azure.core.exceptions import AzureError

        now = self._clock()
        cached = self._active.get(task.name)
        if cached and cached[1] == task.trained_head and now - cached[0] < self.config.heads_refresh_s:
            return cached[2]
        try:
            head = self.heads.active_head(task)
        except (AzureError, OSError, ValueError) as exc:
            if cached is None:
                raise TierError(f"trained heads of {task.name}: cannot read the head store: {exc}") from exc
            log.warning("trained heads of %s: cannot read the head store, keeping %s: %s", task.name,
                        cached[2].version if cached[2] else "zero-shot", exc)
            head = cached[2]
        self._active[task.name] = (now, task.trained_head, head)
        return head

    def head(self, task: AnyTask) -> tuple[object, str]:
        """The task's classifier (or line tagger) and its confidence method, loaded once per head version."""
        with self._heads_lock:
            active = self.active_head(task)
            key = (task.name, f"{active.store.describe(task.name)}@{active.version}" if active else None)
            if key not in self._loaded:
                self._loaded[key] = self.heads.load(task, active)
                if active:
                    log.info("trained head of %s: %s (%s)", task.name, active.version, active.origin)
            return self._loaded[key]

    def batches(self, task: AnyTask) -> bool:
        """A classification task's items are embedded together (extraction items are still answered one at a time:
        each is embedded line by line)."""
        return isinstance(task, ClassificationTask)

    def answer_many(self, task: AnyTask, texts: Sequence[str], decide_at: float | None = None) -> list[TierAnswer]:
        if not isinstance(task, ClassificationTask):
            return super().answer_many(task, texts, decide_at)
        return self._labels(task, texts)

    def classify(self, task: ClassificationTask, text: str, decide_at: float | None = None) -> TierAnswer:
        (answer,) = self._labels(task, [text])
        return answer

    def _labels(self, task: ClassificationTask, texts: Sequence[str]) -> list[TierAnswer]:
        """One embedder call and one head call for all `texts`, an answer each in their order."""
        classifier, method = self.head(task)
        return [TierAnswer(value=label.value, confidence=label.confidence, confidence_method=method,
                           tokens_in=label.tokens, note=label.note) for label in self.heads.labels(classifier, texts)]

    def extract(self, task: ExtractionTask, text: str) -> TierAnswer:
        tagger, method = self.head(task)
        found = self.heads.fields(tagger, task, text)
        # What the tagger found may still not be what the schema allows (a pattern, an enum, a text where a number
        # goes): then the answer is not the task's, and is escalated like any tier's invalid output
        if errors := task.validation_errors(found.value):
            raise InvalidOutputError("; ".join(errors), json.dumps(found.value), found.tokens, 0)
        return TierAnswer(value=found.value, confidence=found.confidence, confidence_method=method,
                          field_confidence=found.field_confidence, tokens_in=found.tokens)

    def probe(self) -> str:
        """Each embedder a task can get loads (a local one: its checked model files; an Azure OpenAI deployment: its
        resource's model list, a GET that spends no tokens), and where the heads are."""
        ready = []
        for embedder in self.heads.embedders:
            if self.config.embedder == "azure_openai":
                embedder.client.models.list()
            else:
                embedder.load()
            ready.append(embedder.id)
        self.heads.language_gate.load()
        return f"trained: {', '.join(ready)} and the language check ready; heads in {self.heads.location()}"

    def health(self) -> str:
        ready = []
        for embedder in self.heads.embedders:
            embedder.embed(["health check"])
            ready.append(f"{embedder.id} ({embedder.dimension} dimensions)")
        return f"trained: {', '.join(ready)} embed; heads in {self.heads.location()}"
