"""The trained tier: an embedding classifier that learns from labels and from the frontier's answers.

It embeds the item (local int8 MiniLM through onnxruntime, or an Azure OpenAI embeddings deployment) and answers
with the task's active head, whose confidence is a temperature-scaled probability. The active head is the newest
activation in the head store (`heads_store`: the local `heads_dir`, or a blob container, where scheduled retraining
activates heads), else the task file's `trained_head` in `heads_dir`. Which one is active is checked again at most
every `heads_refresh_s`, so a newly activated head answers without a restart. A task with no head yet is answered
zero-shot (cosine similarity to each label's name, description and examples) with deliberately low confidence, so
its items escalate. An extraction task is answered by its head, a line tagger (`shared/learning/line_tagger.py`:
per field, the calibrated probability of the line(s) it reads the value from); with no head it raises TierError,
so the item escalates. Its answers carry the tokens the embedder read, priced at the tier's input price (by default
free with the local MiniLM, text-embedding-3-small's list price with an Azure OpenAI deployment).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from functools import cached_property
from typing import TYPE_CHECKING, Callable

from shared.foundation.tasks import AnyTask, ClassificationTask, ExtractionTask
from shared.core.tiers.base import Tier, TierAnswer
from shared.errors import InvalidOutputError, TierError
from shared.learning.classifier import TRAINED_CONFIDENCE_METHOD, ZERO_SHOT_CONFIDENCE_METHOD
from shared.learning.line_tagger import LINE_TAGGER_CONFIDENCE_METHOD

if TYPE_CHECKING:
    from shared.learning.activation import ActiveHead
    from shared.learning.embedders.base import Embedder
    from shared.learning.stores import ArtifactStore

log = logging.getLogger(__name__)


class TrainedTier(Tier):
    def __init__(self, config, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config)
        self._embedder = None
        self._clock = clock
        self._lock = threading.Lock()  # one embedder session
        self._heads_lock = threading.Lock()  # one check of the active head, and one load per head, at a time
        self._heads: dict[tuple[str, str | None], tuple[object, str]] = {}  # (task, head store + version)
        self._active: dict[str, tuple[float, str | None, ActiveHead | None]] = {}  # task -> (checked, file's, head)

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = self._build_embedder()
            return self._embedder

    def _build_embedder(self) -> Embedder:
        if self.config.embedder == "azure_openai":
            from shared.learning.embedders.azure_openai import AzureOpenAIEmbedder

            if not self.config.endpoint:
                raise TierError("trained tier: the azure_openai embedder needs SMALLFIRST_TRAINED_ENDPOINT")
            key = self.config.api_key.get_secret_value() if self.config.api_key else None
            return AzureOpenAIEmbedder(endpoint=self.config.endpoint, deployment=self.config.embeddings_deployment,
                                       api_key=key,
                                       timeout_s=self.config.timeout_s)
        from shared.learning.embedders.minilm import LocalMiniLM

        return LocalMiniLM(threads=self.config.n_threads or 1)

    @cached_property
    def task_file_store(self) -> ArtifactStore:
        """The heads that ship with the app (`heads_dir`), where task files' `trained_head` versions are."""
        from shared.learning.stores import LocalFolderStore

        return LocalFolderStore(self.config.heads_dir)

    @cached_property
    def head_store(self) -> ArtifactStore:
        """Where heads are saved and activated (`heads_store`)."""
        if self.config.heads_store == "local":
            return self.task_file_store
        from shared.learning.stores import BlobArtifactStore
        from shared.pipeline.storage import blob_service

        service = blob_service(self.config.heads_connection)
        return BlobArtifactStore(service.get_container_client(self.config.heads_container), prefix="")

    def active_head(self, task: AnyTask) -> ActiveHead | None:
        """The task's active head, checked again in the store once `heads_refresh_s` has passed (or when the
        task file names another version). If the store cannot be read, the head in use stays in use."""
        from azure.core.exceptions import AzureError

        from shared.learning.activation import active_head

        now = self._clock()
        cached = self._active.get(task.name)
        if cached and cached[1] == task.trained_head and now - cached[0] < self.config.heads_refresh_s:
            return cached[2]
        try:
            head = active_head(self.head_store, task.name, task.trained_head, self.task_file_store)
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
            if key not in self._heads:
                self._heads[key] = (self._load(task, active) if isinstance(task, ClassificationTask)
                                    else self._load_tagger(task, active))
                if active:
                    log.info("trained head of %s: %s (%s)", task.name, active.version, active.origin)
            return self._heads[key]

    def _load_tagger(self, task: ExtractionTask, active: ActiveHead | None) -> tuple[object, str]:
        from shared.learning.artifact import HeadMismatchError
        from shared.learning.extraction_artifact import ExtractionHeadExpectation, load_extraction_head
        from shared.learning.stores import ArtifactNotFoundError

        if active is None:
            raise TierError(f"task {task.name}: no trained extraction head (smallfirst train {task.name} --data ...)")
        expect = ExtractionHeadExpectation.of(self.embedder, task.json_schema)
        try:
            loaded = load_extraction_head(active.store, task.name, active.version, expect)
        except (HeadMismatchError, ArtifactNotFoundError, ValueError) as exc:
            raise TierError(f"trained head {task.name}/{active.version} ({active.origin}): {exc}") from exc
        return loaded.tagger, LINE_TAGGER_CONFIDENCE_METHOD

    def _load(self, task: ClassificationTask, active: ActiveHead | None) -> tuple[object, str]:
        from shared.learning.artifact import HeadExpectation, HeadMismatchError, load_head
        from shared.learning.classifier import ZeroShotClassifier
        from shared.learning.stores import ArtifactNotFoundError

        embedder = self.embedder
        if active is None:
            texts = {label.name: [f"{label.name}: {label.description}" if label.description else label.name]
                     for label in task.labels}
            for example in task.examples:
                texts[example.label].append(example.text)
            return ZeroShotClassifier.from_texts(embedder, texts), ZERO_SHOT_CONFIDENCE_METHOD
        expect = HeadExpectation.of(embedder, [label.name for label in task.labels],
                                    task.none_label if task.allow_none else None)
        try:
            loaded = load_head(active.store, task.name, active.version, expect)
        except (HeadMismatchError, ArtifactNotFoundError, ValueError) as exc:
            raise TierError(f"trained head {task.name}/{active.version} ({active.origin}): {exc}") from exc
        return loaded.classifier, TRAINED_CONFIDENCE_METHOD

    def classify(self, task: ClassificationTask, text: str, decide_at: float | None = None) -> TierAnswer:
        classifier, method = self.head(task)
        embedded = self.embedder.embed_metered([text])
        prediction = classifier.predict_with_confidence(embedded.vectors, [text])
        return TierAnswer(value=prediction.labels[0], confidence=float(prediction.confidence[0]),
                          confidence_method=method, tokens_in=embedded.tokens)

    def extract(self, task: ExtractionTask, text: str) -> TierAnswer:
        from shared.learning.line_candidates import typed_value
        from shared.learning.line_tagger import texts_of

        tagger, method = self.head(task)
        tokens = 0

        def embed(lines):
            nonlocal tokens
            embedded = self.embedder.embed_metered(lines)
            tokens += embedded.tokens
            return embedded.vectors

        (fields,) = tagger.predict_proba(texts_of([text], embed))
        field_confidence = {name: p.confidence for name, p in fields.items()}
        properties = task.json_schema["properties"]
        answer = {name: typed_value(properties[name], p.value) for name, p in fields.items() if p.value is not None}
        # What the tagger found may still not be what the schema allows (a pattern, an enum, a text where a number
        # goes): then the answer is not the task's, and is escalated like any tier's invalid output
        if errors := task.validation_errors(answer):
            raise InvalidOutputError("; ".join(errors), json.dumps(answer), tokens, 0)
        return TierAnswer(value=answer, confidence=tagger.item_confidence(field_confidence), confidence_method=method,
                          field_confidence=field_confidence, tokens_in=tokens)

    def probe(self) -> str:
        """The embedder loads (the local MiniLM: its checked model file; an Azure OpenAI deployment: its resource's
        model list, a GET that spends no tokens), and where the heads are."""
        embedder = self.embedder
        if self.config.embedder == "azure_openai":
            embedder.client.models.list()
        else:
            embedder.load()
        return f"trained: {embedder.id} ready; heads in {self._heads_location()}"

    def _heads_location(self) -> object:
        return self.config.heads_dir if self.config.heads_store == "local" else self.head_store.describe("")

    def health(self) -> str:
        embedder = self.embedder
        embedder.embed(["health check"])
        return f"trained: {embedder.id} ({embedder.dimension} dimensions) embeds; heads in {self._heads_location()}"
