"""The trained tier: an embedding classifier that learns from labels and from the frontier's answers.

It embeds the item (local int8 MiniLM through onnxruntime) and answers with the task's active head
(`trained_head` in the task file: a calibrated logistic regression from `smallfirst train`, loaded from
`heads_dir`), whose confidence is a temperature-scaled probability. A task with no head yet is answered
zero-shot (cosine similarity to each label's name, description and examples) with deliberately low
confidence, so its items escalate. An extraction task is answered by its head, a line tagger
(`shared/learning/line_tagger.py`: per field, the calibrated probability of the line(s) it reads the value from);
an extraction task with no head raises TierError, so the item escalates.
"""

from __future__ import annotations

import threading

from shared.core.tasks import ClassificationTask, ExtractionTask
from shared.core.tiers.base import Tier, TierAnswer
from shared.errors import TierError
from shared.learning.classifier import TRAINED_CONFIDENCE_METHOD, ZERO_SHOT_CONFIDENCE_METHOD
from shared.learning.line_tagger import LINE_TAGGER_CONFIDENCE_METHOD


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

    def head(self, task: ClassificationTask | ExtractionTask) -> tuple[object, str]:
        """The task's classifier (or line tagger) and its confidence method, loaded once per head version."""
        key = (task.name, task.trained_head)
        if key not in self._heads:
            self._heads[key] = self._load(task) if isinstance(task, ClassificationTask) else self._load_tagger(task)
        return self._heads[key]

    def _load_tagger(self, task: ExtractionTask) -> tuple[object, str]:
        from shared.learning.artifact import HeadMismatchError
        from shared.learning.extraction_artifact import ExtractionHeadExpectation, load_extraction_head
        from shared.learning.stores import ArtifactNotFoundError, LocalFolderStore

        if task.trained_head is None:
            raise TierError(f"task {task.name}: no trained extraction head (smallfirst train {task.name} --data ...)")
        expect = ExtractionHeadExpectation.of(self.embedder, task.json_schema)
        try:
            loaded = load_extraction_head(LocalFolderStore(self.config.heads_dir), task.name, task.trained_head, expect)
        except (HeadMismatchError, ArtifactNotFoundError, ValueError) as exc:
            raise TierError(f"trained head {task.name}/{task.trained_head}: {exc}") from exc
        return loaded.tagger, LINE_TAGGER_CONFIDENCE_METHOD

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
        from shared.learning.line_tagger import texts_of

        tagger, method = self.head(task)
        (fields,) = tagger.predict_proba(texts_of([text], self.embedder.embed))
        field_confidence = {name: p.confidence for name, p in fields.items()}
        return TierAnswer(value={name: p.value for name, p in fields.items() if p.value is not None},
                          confidence=tagger.item_confidence(field_confidence), confidence_method=method,
                          field_confidence=field_confidence)

    def health(self) -> str:
        embedder = self.embedder
        embedder.embed(["health check"])
        return f"trained: {embedder.id} ({embedder.dimension} dimensions) embeds; heads in {self.config.heads_dir}"
