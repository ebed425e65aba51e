"""Declarative task specs (classification / extraction) loaded from YAML or JSON files under tasks/."""

from __future__ import annotations

import json
import math
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import jsonschema
import numpy as np
import referencing
import referencing.exceptions
import referencing.jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.foundation.records import Probability
from shared.foundation.task_files import read_task_data
from shared.errors import TaskError, UnknownTaskError

Role = Literal["small", "frontier"]
# The tier names that can be configured, cheapest first, with the role each has unless its ROLE says otherwise.
DEFAULT_ROLES: dict[str, Role] = {"trained": "small", "small": "small", "small2": "small", "frontier": "frontier"}
TIER_NAMES = tuple(DEFAULT_ROLES)
TASK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # a file's stem, a blob folder, a route value
HEAD_VERSION = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")  # a trained head's version: when it was saved, UTC
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")  # a BCP 47 tag: en, pt-BR, zh-Hant
CHARS_PER_TOKEN = 4  # rough estimate used for budgets before any tokenizer is loaded


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^\S(.*\S)?$")  # no blank name, no space at either end (a model would not echo it)
    description: str = ""


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    label: str | None = None
    output: dict[str, Any] | None = None


class Calibration(BaseModel):
    """A monotone map from a tier's raw confidence to the probability of being right (fitted by `tune`)."""

    model_config = ConfigDict(extra="forbid")
    tier: str = "small"
    method: Literal["isotonic"] = "isotonic"
    x: list[Probability]  # raw confidences
    y: list[Probability]
    fitted_on: str = ""
    fitted_at: str = ""

    @model_validator(mode="after")
    def _a_monotone_map_of_probabilities(self) -> "Calibration":
        if len(self.x) != len(self.y) or not self.x:
            raise ValueError("x and y must be non-empty and of equal length")
        if any(b < a for a, b in zip(self.x, self.x[1:])) or any(b < a for a, b in zip(self.y, self.y[1:])):
            raise ValueError("x and y must be non-decreasing (np.interp reads x so; isotonic maps are)")
        return self

    def apply(self, confidence: float) -> float:
        return float(np.interp(confidence, self.x, self.y))


class ThresholdBound(BaseModel):
    """What a tuned threshold promises (`smallfirst tune`, shared/evaluation/guarantees.py): a one-sided lower
    confidence bound on accuracy, measured on the run it was tuned on."""

    model_config = ConfigDict(extra="forbid")
    # `accepted`: the tier's accepted items alone (the rest to review); `cascade`: every item, the rest escalated
    scope: Literal["accepted", "cascade"]
    accuracy_lower_bound: Probability
    confidence: float = Field(gt=0.0, lt=1.0)
    target: Probability
    items: int = Field(ge=1)  # the run's items
    accepted: int = Field(ge=0)  # of them, those the tier accepts at the threshold
    correct: int = Field(ge=0)  # right answers among those the bound counts (accepted, or every item)
    method: str = "one-sided Clopper-Pearson, fixed-sequence from the highest threshold"

    @property
    def statement(self) -> str:
        """The bound in a line, rounded down so that it never claims more than was shown."""
        percent = math.floor(self.accuracy_lower_bound * 1000) / 10
        what, counts = (("accepted items", f"{self.accepted} accepted") if self.scope == "accepted" else
                        ("cascade answers", f"{self.accepted} accepted, {self.items - self.accepted} escalated"))
        return (f"{what} >= {percent:.1f}% accurate with {self.confidence * 100:g}% confidence on {self.items} items "
                f"({counts})")


class TaskBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=TASK_NAME.pattern)
    description: str = ""
    instruction: str = Field(pattern=r"\S")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    threshold_source: str = "default (not tuned)"
    # Live accuracy (shared/monitoring/shadow.py): the share of items a cheaper tier accepted that the frontier also
    # answers off the request path, and the accuracy those accepted answers must keep (an alert below it).
    shadow_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    # Per tier, the confidence histogram (10 equal bins) of the run its threshold was tuned on (`smallfirst tune`).
    confidence_reference: dict[str, list[Probability]] = Field(default_factory=dict)
    target_accuracy: float = Field(default=0.95, gt=0.0, le=1.0)
    # A frontier answer is final unless its confidence is below this (then it goes to review); 0 = always final.
    frontier_threshold: float = Field(default=0.0, ge=0.0, le=1.0)
    # Per-tier thresholds where a tier's confidence means something else than the others' (tuned by `tune --tier`).
    tier_thresholds: dict[str, Probability] = Field(default_factory=dict)
    tier_threshold_sources: dict[str, str] = Field(default_factory=dict)
    # Per tier (`small` for `threshold`), the accuracy bound its tuned threshold was chosen by.
    threshold_bounds: dict[str, ThresholdBound] = Field(default_factory=dict)
    max_input_chars: int = Field(default=20_000, gt=0)
    max_input_tokens: int = Field(default=4_000, gt=0)
    tiers: list[str] = Field(default_factory=lambda: ["small", "small2", "frontier"], min_length=1)
    # the active head version of the trained tier; none: zero-shot
    trained_head: str | None = Field(default=None, pattern=HEAD_VERSION.pattern)
    calibration: Calibration | None = None
    examples: list[Example] = Field(default_factory=list)
    # The languages the texts come in, as language tags (`[en, es, fr]`); none declared reads as English. Any but
    # English gives the task the trained tier's multilingual embedder (shared/learning/serving.py:embedder_kind).
    languages: list[Annotated[str, Field(pattern=LANGUAGE_TAG.pattern)]] = Field(default_factory=list)

    @field_validator("languages", mode="before")
    @classmethod
    def _tags_not_yaml_booleans(cls, languages: Any) -> Any:
        """YAML reads a bare `no` (Norwegian) as false: say so rather than "not a valid string"."""
        if isinstance(languages, list) and any(isinstance(tag, bool) for tag in languages):
            raise ValueError("a language read as true or false: quote it (YAML reads a bare no, yes, on or off so)")
        return languages

    @property
    def language_codes(self) -> dict[str, str]:
        """Each declared tag with its language alone, lower-case (`sv-SE` -> `sv`): what an embedder's languages and
        a language identifier name."""
        return {tag: tag.split("-")[0].casefold() for tag in self.languages}

    @property
    def multilingual(self) -> bool:
        """Its texts come in a language other than English."""
        return any(code != "en" for code in self.language_codes.values())

    @field_validator("tiers")
    @classmethod
    def _known_tiers_once_each(cls, tiers: list[str]) -> list[str]:
        """A typo would drop a tier (the task never escalating), a repeat pay for one twice."""
        if unknown := [tier for tier in tiers if tier not in TIER_NAMES]:
            raise ValueError(f"unknown tiers {unknown}: the tiers are {', '.join(TIER_NAMES)}")
        if len(set(tiers)) != len(tiers):
            raise ValueError("each tier may appear once")
        return tiers

    @model_validator(mode="after")
    def _thresholds_of_known_tiers(self) -> "TaskBase":
        """Of a tier the task does not use (for now: taken out of `tiers`, its tuning kept), but not of a typo."""
        for field in ("tier_thresholds", "threshold_bounds"):
            if stray := sorted(set(getattr(self, field)) - set(TIER_NAMES)):
                raise ValueError(f"{field} for unknown tiers {stray}: the tiers are {', '.join(TIER_NAMES)}")
        if self.calibration is not None and self.calibration.tier not in TIER_NAMES:
            raise ValueError(f"calibration for unknown tier {self.calibration.tier!r}: the tiers are "
                             f"{', '.join(TIER_NAMES)}")
        return self

    def estimate_tokens(self, text: str) -> int:
        return len(text) // CHARS_PER_TOKEN + 1


class ClassificationTask(TaskBase):
    kind: Literal["classification"] = "classification"
    labels: list[Label] = Field(min_length=2)
    allow_none: bool = False
    none_label: str | None = None
    # The trained head's out-of-scope trade-off: the share of in-scope held-out items it may answer none_label
    # (shared/learning/calibration.py). Lower keeps more in-scope answers, higher catches more out-of-scope ones.
    none_reject_budget: float = Field(default=0.05, ge=0.0, lt=1.0)
    # Or the requirement on out-of-scope items instead: the share of held-out none examples the head must answer
    # none. Used when the training data has enough of them (classifier.MIN_NONE_ROWS_FOR_RECALL), else the budget.
    none_recall_target: float | None = Field(default=None, gt=0.0, le=1.0)
    # The label that takes what fits none of the others (`other`): one of `labels`, answered and prompted like them.
    # The trained head treats it as it treats none_label (a class plus a threshold by the two settings above, its
    # held-out rows counting as none), so a text far from every other label lands there instead of in the nearest.
    catch_all: str | None = None
    # How much of each label's description goes into the prompt (cut at a word boundary); None: all, 0: names only.
    label_description_chars: int | None = Field(default=None, ge=0)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_in_short(cls, labels: Any) -> Any:
        """Labels may be written as names alone (`[billing, other]`) or as a mapping of name to description."""
        if isinstance(labels, dict):
            return [{"name": name, "description": description or ""} for name, description in labels.items()]
        if isinstance(labels, list):
            return [{"name": label} if isinstance(label, str) else label for label in labels]
        return labels

    @model_validator(mode="after")
    def _check_labels(self) -> "ClassificationTask":
        names = [label.name for label in self.labels]
        if len({name.casefold() for name in names}) != len(names):
            raise ValueError("label names must be unique, also ignoring case")
        if self.allow_none and not self.none_label:
            raise ValueError("allow_none needs a none_label")
        if self.none_label and not self.allow_none:  # else it would be ignored without a word
            raise ValueError(f"none_label {self.none_label!r} is set but allow_none is not: set allow_none: true")
        if self.none_label and self.none_label in names:
            raise ValueError("none_label must not also be a label")
        if self.catch_all is not None and self.catch_all not in names:
            raise ValueError(f"catch_all {self.catch_all!r} is not one of the labels ({', '.join(names)})")
        if self.catch_all is not None and self.allow_none:
            raise ValueError("catch_all and none_label both take what fits no label: declare one of them")
        for example in self.examples:
            if example.label not in self.allowed_labels:
                raise ValueError(f"example label {example.label!r} is not an allowed label")
        return self

    @property
    def allowed_labels(self) -> list[str]:
        names = [label.name for label in self.labels]
        return names + [self.none_label] if self.allow_none and self.none_label else names

    @property
    def output_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": self.allowed_labels}},
            "required": ["label"],
            "additionalProperties": False,
        }


class ExtractionTask(TaskBase):
    kind: Literal["extraction"] = "extraction"
    json_schema: dict[str, Any] = Field(alias="schema")
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        jsonschema.Draft202012Validator.check_schema(schema)
        if schema.get("type") != "object" or not schema.get("properties"):
            raise ValueError("an extraction schema must be an object with properties")
        if missing := [f for f in schema.get("required") or [] if f not in schema["properties"]]:
            raise ValueError(f"required fields {missing} are not among the properties")
        unresolved, circular = _ref_problems(schema)
        if unresolved:
            raise ValueError(f"$ref {', '.join(map(repr, unresolved))} does not resolve within the schema "
                             "(a task's schema must be self-contained: nothing is fetched)")
        if circular:
            raise ValueError(f"$ref {', '.join(map(repr, circular))} refers to itself through $refs alone (no "
                             "value could ever be checked against it)")
        return schema

    @property
    def output_schema(self) -> dict[str, Any]:
        return self.json_schema

    @property
    def required_fields(self) -> list[str]:
        return list(self.json_schema.get("required") or self.json_schema["properties"])

    @cached_property
    def validator(self) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(self.json_schema)

    def validation_errors(self, answer: Any) -> list[str]:
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in self.validator.iter_errors(answer)]


AnyTask = ClassificationTask | ExtractionTask


def _ref_problems(schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The schema's `$ref`s that do not resolve within it (they would fail every answer's validation), and those
    whose chain of schemas that are nothing but a `$ref` comes back to itself (validating against one recurses
    without end; llama.cpp's grammar builder crashes on it). Each is looked up as jsonschema will: relative to the
    nearest enclosing `$id`."""
    root = referencing.jsonschema.DRAFT202012.create_resource(schema)
    registry = referencing.Registry().with_resource(root.id() or "", root).crawl()  # every nested `$id` known
    unresolved: list[str] = []
    circular: list[str] = []

    def follow(ref: str, resolver: referencing.Resolver[Any]) -> None:
        try:
            target = resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            unresolved.append(ref)
            return
        seen: set[int] = set()
        while isinstance(target.contents, dict) and set(target.contents) - ANNOTATIONS == {"$ref"}:
            if id(target.contents) in seen:
                circular.append(ref)
                return
            seen.add(id(target.contents))
            try:
                target = target.resolver.lookup(target.contents["$ref"])
            except referencing.exceptions.Unresolvable:
                return  # that ref is reported where it is written

    def walk(node: Any, resolver: referencing.Resolver[Any], is_root: bool) -> None:
        if isinstance(node, list):
            for child in node:
                walk(child, resolver, False)
            return
        if not isinstance(node, dict):
            return
        if not is_root and isinstance(node.get("$id"), str):
            resolver = resolver.in_subresource(referencing.jsonschema.DRAFT202012.create_resource(node))
        if isinstance(ref := node.get("$ref"), str):
            follow(ref, resolver)
        for key, child in node.items():
            if key not in DATA_KEYWORDS:
                walk(child, resolver, False)

    walk(schema, registry.resolver(root.id() or ""), True)
    return list(dict.fromkeys(unresolved)), list(dict.fromkeys(circular))


ANNOTATIONS = {"$defs", "$comment", "title", "description", "$anchor"}  # keywords that check nothing
DATA_KEYWORDS = ("enum", "const", "default", "examples")  # their values are instances, not schemas


class _TaskFile(BaseModel):
    task: Annotated[AnyTask, Field(discriminator="kind")]


def load_task_file(path: Path) -> AnyTask:
    try:
        raw = read_task_data(path)
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:  # ValueError: bad JSON or UTF-8
        raise TaskError(f"{path}: cannot read task file: {type(exc).__name__}: {exc}") from exc
    if not isinstance(raw, dict):
        raise TaskError(f"{path}: a task file must be a mapping")
    schema_file = raw.pop("schema_file", None)
    if schema_file is not None and "schema" in raw:
        raise TaskError(f"{path}: schema_file and schema are both given: keep one")
    if "schema" in raw:  # YAML may write keys JSON cannot (1:, 2020-01-01:): a schema is JSON data
        try:
            raw["schema"] = json.loads(json.dumps(raw["schema"], allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise TaskError(f"{path}: schema: not JSON data: {exc}") from exc
    if schema_file is not None:
        if not isinstance(schema_file, str):
            raise TaskError(f"{path}: schema_file must be a path, not {type(schema_file).__name__}")
        try:
            raw["schema"] = json.loads((path.parent / schema_file).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON or UTF-8, a NUL in the path
            raise TaskError(f"{path}: schema_file {schema_file!r}: {type(exc).__name__}: {exc}") from exc
    raw.setdefault("name", path.stem)
    try:
        task = _TaskFile.model_validate({"task": raw}).task
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][2:]) or 'task'}: {err['msg']}" for err in exc.errors()
        )
        raise TaskError(f"{path}: {problems}") from exc
    except jsonschema.SchemaError as exc:
        raise TaskError(f"{path}: schema: {exc.message}") from exc
    if task.name != path.stem:
        raise TaskError(f"{path}: name {task.name!r} must match the file name {path.stem!r}")
    return task


class TaskCatalog:
    """The tasks in a directory, loaded on first use and cached by name."""

    def __init__(self, tasks_dir: Path) -> None:
        self.tasks_dir = tasks_dir
        self._tasks: dict[str, AnyTask] = {}

    def _path(self, name: str) -> Path | None:
        for suffix in (".yaml", ".yml", ".json"):
            candidate = self.tasks_dir / f"{name}{suffix}"
            try:
                if candidate.is_file():
                    return candidate
            except OSError:  # a name longer than the file system allows names no task
                return None
        return None

    def names(self) -> list[str]:
        try:
            return sorted(p.stem for p in self.tasks_dir.iterdir()
                          if p.suffix in {".yaml", ".yml", ".json"} and TASK_NAME.fullmatch(p.stem) and p.is_file())
        except OSError as exc:  # SMALLFIRST_TASKS_DIR names no folder, or one that cannot be read
            raise TaskError(f"tasks folder {self.tasks_dir}: {exc.strerror or exc}") from exc

    def get(self, name: str) -> AnyTask:
        """The task of that name; UnknownTaskError if there is none (a name is never a path)."""
        if name not in self._tasks:
            self._tasks[name] = load_task_file(self.path_of(name))
        return self._tasks[name]

    def each(self) -> list[tuple[str, AnyTask | TaskError]]:
        """Every task file's task, or the TaskError saying why it does not load: one broken file hides no other."""
        loaded: list[tuple[str, AnyTask | TaskError]] = []
        for name in self.names():
            try:
                loaded.append((name, self.get(name)))
            except TaskError as exc:
                loaded.append((name, exc))
        return loaded

    def path_of(self, name: str) -> Path:
        path = self._path(name) if TASK_NAME.fullmatch(name) else None
        if path is None:
            raise UnknownTaskError(name, self.names())
        return path
