"""The trained tier: an embedding classifier that learns from labels and from the frontier's answers.

It embeds the item (local int8 MiniLM through onnxruntime) and answers with the task's active head
(`trained_head` in the task file: a calibrated logistic regression from `smallfirst train`, loaded from
`heads_dir`), whose confidence is a temperature-scaled probability. A task with no head yet is answered
zero-shot (cosine similarity to each label's name, description and examples) with deliberately low
confidence, so its items escalate. It classifies only; an extraction task is not its work.
"""

from __future__ import annotations

import threading

from shared.core.tasks import ClassificationTask, ExtractionTask
from shared.core.tiers.base import Tier, TierAnswer
from shared.errors import TierError
from shared.learning.classifier import TRAINED_CONFIDENCE_METHOD, ZERO_SHOT_CONFIDENCE_METHOD


class TrainedTier(Tier):
    def __init__(self, config) -> None:
        super().__init__(config)
        self._embedder = None
        self._heads: dict[tuple[str, str | None], tuple[object, str]] = {}
        self._lock = threading.Lock()  # one embedder session and one load per head

    @property
    def embedder(self):
        with self._lock:
            if self._embedder is None:
                from shared.learning.embedders.minilm import LocalMiniLM

                self._embedder = LocalMiniLM(threads=self.config.n_threads or 1)
            return self._embedder

    def head(self, task: ClassificationTask) -> tuple[object, str]:
        """The task's classifier and its confidence method, loaded once per head version."""
        key = (task.name, task.trained_head)
        if key not in self._heads:
            self._heads[key] = self._load(task)
        return self._heads[key]

    def _load(self, task: ClassificationTask) -> tuple[object, str]:
        from shared.learning.artifact import HeadExpectation, HeadMismatchError, load_head
        from shared.learning.classifier import ZeroShotClassifier
        from shared.learning.stores import ArtifactNotFoundError, LocalFolderStore

        embedder = self.embedder
        if task.trained_head is None:
            texts = {label.name: [f"{label.name}: {label.description}" if label.description else label.name]
                     for label in task.labels}
            for example in task.examples:
                texts[example.label].append(example.text)
            return ZeroShotClassifier.from_texts(embedder, texts), ZERO_SHOT_CONFIDENCE_METHOD
        expect = HeadExpectation.of(embedder, [label.name for label in task.labels],
                                    task.none_label if task.allow_none else None)
        try:
            loaded = load_head(LocalFolderStore(self.config.heads_dir), task.name, task.trained_head, expect)
        except (HeadMismatchError, ArtifactNotFoundError, ValueError) as exc:
            raise TierError(f"trained head {task.name}/{task.trained_head}: {exc}") from exc
        return loaded.classifier, TRAINED_CONFIDENCE_METHOD

    def classify(self, task: ClassificationTask, text: str, decide_at: float | None = None) -> TierAnswer:
        classifier, method = self.head(task)
        prediction = classifier.predict_with_confidence(self.embedder.embed([text]))
        return TierAnswer(value=prediction.labels[0], confidence=float(prediction.confidence[0]),
                          confidence_method=method)

    def extract(self, task: ExtractionTask, text: str) -> TierAnswer:
        raise TierError(f"task {task.name}: the trained tier classifies; it does not extract")

    def health(self) -> str:
        embedder = self.embedder
        embedder.embed(["health check"])
        return f"trained: {embedder.id} ({embedder.dimension} dimensions) embeds; heads in {self.config.heads_dir}"
