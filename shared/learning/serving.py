"""What the trained tier (shared/core/tiers/trained.py) is handed by learning: the one seam between core and learning.

core never imports learning: the backend registry's spec for `trained` (shared/core/backends.py, `heads`) names
`TrainedHeads` here by import path, and the tier builds it from its configuration on first use. A `TrainedHeads`
holds the embedders and the two head stores (the heads that ship with the app in `heads_dir`, and `heads_store`,
where heads are saved and activated), and answers with the heads in them; the tier keeps which head is active,
how often that is checked, and what it answers. Nothing here imports core.

Which embedder a task gets is `embedder_kind`'s one rule: the `embedder` setting, whose default `auto` gives the
multilingual USE-m to a task that declares languages other than English alone and MiniLM to the others. Each head
is loaded with its task's embedder (a head trained on another is refused: HeadMismatchError) and travels with it
as a `ServedHead`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, Sequence

from pydantic import SecretStr

from shared.errors import TierError
from shared.foundation.tasks import AnyTask, ClassificationTask, ExtractionTask
from shared.learning.activation import ActiveHead, active_head
from shared.learning.embedders.base import Embedder, Embeddings
from shared.learning.language import LanguageGate

log = logging.getLogger(__name__)
from shared.learning.stores import ArtifactStore


def embedder_kind(setting: str, task: AnyTask) -> str:
    """The embedder that embeds ``task``'s texts: the setting, or with ``auto`` the multilingual USE-m for a task
    that declares languages other than English alone and the English MiniLM (the smaller model) for the others.
    docs/embedders.md has the measurements behind it."""
    if setting != "auto":
        return setting
    return "use_multilingual" if task.multilingual else "minilm"


class HeadsSettings(Protocol):
    """The trained tier's settings that say where its heads are and how it embeds (core/config.py's TierConfig)."""

    embedder: str
    endpoint: str | None
    api_key: SecretStr | None
    embeddings_deployment: str
    timeout_s: float
    n_threads: int | None
    heads_dir: Path
    heads_store: str
    heads_connection: str
    heads_container: str


@dataclass(frozen=True)
class ServedHead:
    """A loaded head (a classifier, zero-shot or trained, or a line tagger) with the embedder it reads."""

    model: Any
    embedder: Embedder


@dataclass(frozen=True)
class Label:
    value: str
    confidence: float
    tokens: int  # what the embedder read
    note: str | None = None  # why the confidence is what it is, where the head was overruled


@dataclass(frozen=True)
class Fields:
    value: dict[str, Any]  # each found field as the JSON type its schema asks for
    field_confidence: dict[str, float]
    confidence: float  # the item's, from its fields'
    tokens: int


class TrainedHeads:
    """The embedder and the head stores of one trained tier, built from its settings, each on first use."""

    def __init__(self, settings: HeadsSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()  # one session per embedder kind
        self._embedders: dict[str, Embedder] = {}

    @property
    def embedder(self) -> Embedder:
        """The embedder of a task that declares no languages."""
        return self._embedder("minilm" if self.settings.embedder == "auto" else self.settings.embedder)

    @property
    def embedders(self) -> list[Embedder]:
        """Every embedder the setting can give a task (with ``auto``, both local ones): what the tier's probe and
        health check, so a broken multilingual install is not reported healthy by the English one."""
        kinds = ["minilm", "use_multilingual"] if self.settings.embedder == "auto" else [self.settings.embedder]
        return [self._embedder(kind) for kind in kinds]

    def embedder_for(self, task: AnyTask) -> Embedder:
        """The embedder ``task``'s texts are embedded by, for answering and for training alike."""
        return self._embedder(embedder_kind(self.settings.embedder, task))

    def _embedder(self, kind: str) -> Embedder:
        """One embedder per kind, built on first use and kept."""
        with self._lock:
            if kind not in self._embedders:
                self._embedders[kind] = self._build_embedder(kind)
            return self._embedders[kind]

    def _build_embedder(self, kind: str) -> Embedder:
        settings = self.settings
        if kind == "use_multilingual":
            from shared.learning.embedders.use_multilingual import LocalUSEMultilingual

            return LocalUSEMultilingual(threads=settings.n_threads or 1)
        if kind == "azure_openai":
            from shared.learning.embedders.azure_openai import AzureOpenAIEmbedder

            if not settings.endpoint:
                raise TierError("trained tier: the azure_openai embedder needs SMALLFIRST_TRAINED_ENDPOINT")
            key = settings.api_key.get_secret_value() if settings.api_key else None
            return AzureOpenAIEmbedder(endpoint=settings.endpoint, deployment=settings.embeddings_deployment,
                                       api_key=key, timeout_s=settings.timeout_s)
        from shared.learning.embedders.minilm import LocalMiniLM

        return LocalMiniLM(threads=settings.n_threads or 1)

    @cached_property
    def task_file_store(self) -> ArtifactStore:
        """The heads that ship with the app (`heads_dir`), where task files' `trained_head` versions are."""
        from shared.learning.stores import LocalFolderStore

        return LocalFolderStore(self.settings.heads_dir)

    @cached_property
    def head_store(self) -> ArtifactStore:
        """Where heads are saved and activated (`heads_store`)."""
        if self.settings.heads_store == "local":
            return self.task_file_store
        from shared.foundation.storage_connections import blob_service
        from shared.learning.stores import BlobArtifactStore

        service = blob_service(self.settings.heads_connection)
        return BlobArtifactStore(service.get_container_client(self.settings.heads_container), prefix="")

    def location(self) -> object:
        """Where the heads are, for messages."""
        return self.settings.heads_dir if self.settings.heads_store == "local" else self.head_store.describe("")

    def active_head(self, task: AnyTask) -> ActiveHead | None:
        return active_head(self.head_store, task.name, task.trained_head, self.task_file_store)

    def load(self, task: AnyTask, active: ActiveHead | None) -> tuple[ServedHead, str]:
        """The task's classifier (zero-shot with no head) or line tagger with its embedder, and its confidence
        method."""
        embedder = self.embedder_for(task)
        model, method = (self._classifier(task, active, embedder) if isinstance(task, ClassificationTask)
                         else self._tagger(task, active, embedder))
        return ServedHead(model, embedder), method

    def _tagger(self, task: ExtractionTask, active: ActiveHead | None, embedder: Embedder) -> tuple[object, str]:
        from shared.learning.artifact import HeadMismatchError
        from shared.learning.extraction_artifact import ExtractionHeadExpectation, load_extraction_head
        from shared.learning.line_tagger import LINE_TAGGER_CONFIDENCE_METHOD
        from shared.learning.stores import ArtifactNotFoundError

        if active is None:
            raise TierError(f"task {task.name}: no trained extraction head (smallfirst train {task.name} --data ...)")
        expect = ExtractionHeadExpectation.of(embedder, task.json_schema)
        try:
            loaded = load_extraction_head(active.store, task.name, active.version, expect)
        except (HeadMismatchError, ArtifactNotFoundError, ValueError) as exc:
            raise TierError(f"trained head {task.name}/{active.version} ({active.origin}): {exc}") from exc
        return loaded.tagger, LINE_TAGGER_CONFIDENCE_METHOD

    def _classifier(self, task: ClassificationTask, active: ActiveHead | None,
                    embedder: Embedder) -> tuple[object, str]:
        from shared.learning.artifact import HeadExpectation, HeadMismatchError, load_head
        from shared.learning.classifier import ZERO_SHOT_CONFIDENCE_METHOD, ZeroShotClassifier
        from shared.learning.stores import ArtifactNotFoundError

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
        return loaded.classifier, loaded.classifier.confidence_method

    @cached_property
    def _one_blas_thread(self) -> "OneBlasThread":
        return OneBlasThread()

    @cached_property
    def language_gate(self) -> LanguageGate:
        return LanguageGate()

    def _unreadable(self, texts: Sequence[str], embedder: Embedder) -> list[str | None]:
        """The gate's judgement of each text; if the identifier itself fails, every text is read as the head reads
        it (logged): a broken check must not fail every answer."""
        try:
            return self.language_gate.unreadable(texts, embedder.languages)
        except Exception:
            log.exception("the language check failed; answering without it")
            return [None] * len(texts)

    def languages_outside(self, task: AnyTask) -> list[str]:
        """The languages ``task`` declares that its embedder was not trained on: its items in them escalate."""
        readable = self.embedder_for(task).languages
        if readable is None:
            return []
        return sorted(tag for tag, code in task.language_codes.items() if code not in readable)

    def labels(self, head: ServedHead, texts: Sequence[str]) -> list[Label]:
        """A label for each text, in their order, from one embedder call and one head call: the embedder sorts the
        texts by token length so that a batch is padded little (the local MiniLM). Each Label's tokens are its
        own text's. A text in a language the embedder was not trained on gets confidence 0, and a note that says
        so (shared/learning/language.py), so it escalates."""
        embedded = head.embedder.embed_metered(texts)
        with self._one_blas_thread:
            prediction = head.model.predict_with_confidence(embedded.vectors, texts)
        labels = []
        for value, confidence, tokens, language in zip(
                prediction.labels, prediction.confidence, _tokens_each(texts, embedded),
                self._unreadable(texts, head.embedder)):
            if language is None:
                labels.append(Label(value, float(confidence), tokens))
            else:  # the head's confidence means nothing for a text its embedder cannot read (language.py)
                labels.append(Label(value, 0.0, tokens, note=f"the text reads as {language!r}, a language "
                                                             f"{head.embedder.id} was not trained on"))
        return labels

    def fields(self, head: ServedHead, task: ExtractionTask, text: str) -> Fields:
        from shared.learning.line_candidates import typed_value
        from shared.learning.line_tagger import texts_of

        tokens = 0

        def embed(lines):
            nonlocal tokens
            embedded = head.embedder.embed_metered(lines)
            tokens += embedded.tokens
            return embedded.vectors

        (found,) = head.model.predict_proba(texts_of([text], embed))
        field_confidence = {name: p.confidence for name, p in found.items()}
        properties = task.json_schema["properties"]
        value = {name: typed_value(properties[name], p.value) for name, p in found.items() if p.value is not None}
        return Fields(value, field_confidence, head.model.item_confidence(field_confidence), tokens)


class OneBlasThread:
    """numpy's BLAS on one thread while any head answers: a head's products are small, and BLAS threads left
    spinning after one took a core from the embedder's next call (batched items 3.9 -> 2.9 ms on this 2-core
    machine). threadpoolctl's limit is process-wide and restores what it saw on entry, so two threads' overlapping
    limits could restore in the wrong order and leave BLAS at one thread for good; here the first head in sets the
    limit and the last one out restores it. (The multilingual embedder sets its own limit around each call; with
    more than one thread configured for it, the same overlap can leave BLAS at that count, which costs speed only.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._limit: Any = None

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                from threadpoolctl import ThreadpoolController

                self._limit = ThreadpoolController().limit(limits=1, user_api="blas")
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                self._limit.restore_original_limits()
                self._limit = None


def _tokens_each(texts: Sequence[str], embedded: Embeddings) -> list[int]:
    """Each text's tokens of a call: the embedder's own count per text where it has one (the local embedders), else
    the call's total shared in proportion to the texts' lengths, the rounding left to the longest, so the shares
    add up to what was billed (an endpoint reports one count per request)."""
    if len(texts) == 1:
        return [embedded.tokens]
    if embedded.tokens_each is not None:
        return list(embedded.tokens_each)
    lengths = [max(len(text), 1) for text in texts]
    shares = [embedded.tokens * length // sum(lengths) for length in lengths]
    shares[lengths.index(max(lengths))] += embedded.tokens - sum(shares)
    return shares
