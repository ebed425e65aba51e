"""Labelled examples with provenance, from labelled files, from the frontier's answers and from people's corrections.

Provenance: ``gold`` (a labelled file), ``frontier`` (an answer a frontier tier gave and the cascade accepted),
``correction`` (a person's final answer in review). Examples are de-duplicated by the SHA-256 of their normalised
text (Unicode NFKC, case-folded, whitespace collapsed); when a text occurs more than once, the more trusted
provenance wins -- correction > gold > frontier -- and between equals, the one given later.

No self-training: result records are used only when the tier that gave the final answer is one of the frontier
tiers the caller names, so answers the trained tier itself had accepted can never become its training data.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any, Collection, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from shared.foundation.records import CorrectionRecord, ResultRecord
from shared.foundation.text_files import RowText, decode_text, jsonl_rows

Provenance = Literal["gold", "frontier", "correction"]
TRUST: dict[str, int] = {"frontier": 0, "gold": 1, "correction": 2}
FINAL_STATUSES = ("accepted", "escalated")  # the cascade accepted an answer (needs_review and failed did not)


def normalise_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_hash(text: str) -> str:
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()


class LabelledExample(BaseModel):
    model_config = ConfigDict(frozen=True)
    text: str = Field(min_length=1)
    label: str = Field(min_length=1)
    provenance: Provenance
    source: str = ""  # e.g. the item id, the file, or who corrected it

    @property
    def text_hash(self) -> str:
        return text_hash(self.text)


class LabelledRow(BaseModel):
    """One line of a labelled jsonl file."""

    model_config = ConfigDict(coerce_numbers_to_str=True)  # numbered rows, as items and eval data
    id: str
    text: RowText
    label: str = Field(min_length=1)


class TrainingDataSummary(BaseModel):
    sha256: str
    size: int
    by_provenance: dict[str, int]
    by_label: dict[str, int]


class BuildReport(BaseModel):
    """What a builder used and what it skipped, by reason."""

    used: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def merge(self, other: "BuildReport") -> None:
        self.used += other.used
        for reason, count in other.skipped.items():
            self.skip(reason, count)


def read_labelled_jsonl(path: Path, provenance: Provenance = "gold") -> list[LabelledExample]:
    return parse_labelled_jsonl(decode_text(Path(path).read_bytes(), str(path)), str(path), provenance)


def parse_labelled_jsonl(text: str, where: str, provenance: Provenance = "gold") -> list[LabelledExample]:
    return [LabelledExample(text=row.text, label=row.label, provenance=provenance, source=row.id)
            for _, row in jsonl_rows(text, LabelledRow, where, "a labelled row {id, text, label}")]


def examples_from_results(
    records: Iterable[Mapping[str, Any] | Any],
    texts: Mapping[str, str],
    *,
    task: str,
    frontier_tiers: Collection[str],
    allowed_labels: Collection[str] | None = None,
) -> tuple[list[LabelledExample], BuildReport]:
    """Frontier-answered result records as examples. Result records carry no text, so ``texts`` maps item id to the
    text the cascade read. Used only when: the record is for ``task``; the cascade accepted an answer; the answering
    tier is in ``frontier_tiers`` and its attempt was accepted with that answer; the answer is an allowed label."""
    frontier = set(frontier_tiers)
    examples, report = [], BuildReport()
    for raw in records:
        record = ResultRecord.model_validate(raw, from_attributes=not isinstance(raw, Mapping))
        if record.task != task:
            report.skip("other task")
        elif record.status not in FINAL_STATUSES:
            report.skip(f"status {record.status}")
        elif record.tier not in frontier:
            report.skip("not answered by a frontier tier")
        elif not any(a.tier == record.tier and a.outcome == "accepted" and a.answer == record.answer
                     for a in record.attempts):
            report.skip("no accepted frontier attempt with that answer")
        elif not isinstance(record.answer, str) or (allowed_labels is not None and record.answer not in allowed_labels):
            report.skip("answer is not an allowed label")
        elif not texts.get(record.id):
            report.skip("no text for the item")
        else:
            examples.append(LabelledExample(text=texts[record.id], label=record.answer, provenance="frontier",
                                            source=f"{record.tier}:{record.id}"))
            report.used += 1
    return examples, report


def examples_from_corrections(
    corrections: Iterable[CorrectionRecord | Mapping[str, Any]],
    *,
    task: str,
    allowed_labels: Collection[str] | None = None,
) -> tuple[list[LabelledExample], BuildReport]:
    examples, report = [], BuildReport()
    for raw in corrections:
        record = raw if isinstance(raw, CorrectionRecord) else CorrectionRecord.model_validate(raw)
        answer = record.final_answer
        if record.task != task:
            report.skip("other task")
        elif record.decision == "reject":
            report.skip("rejected in review")
        elif not isinstance(answer, str) or (allowed_labels is not None and answer not in allowed_labels):
            report.skip("answer is not an allowed label")
        else:
            examples.append(LabelledExample(text=record.text, label=answer, provenance="correction",
                                            source=f"{record.by}@{record.at.isoformat()}:{record.id}"))
            report.used += 1
    return examples, report


def disputed_texts(examples: Iterable[LabelledExample]) -> set[str]:
    """The text hashes (normalised texts) given more than one label."""
    labels: dict[str, set[str]] = {}
    for example in examples:
        labels.setdefault(example.text_hash, set()).add(example.label)
    return {key for key, given in labels.items() if len(given) > 1}


class TrainingSet:
    """De-duplicated examples in a canonical order (by text hash), so equal data trains and hashes alike.
    `disagreements`: the texts given more than one label (the most trusted, then the latest, is kept)."""

    def __init__(self, examples: Iterable[LabelledExample]) -> None:
        given = list(examples)
        chosen: dict[str, LabelledExample] = {}
        for example in given:  # later examples replace earlier ones of equal or lower trust
            key = example.text_hash
            if key not in chosen or TRUST[example.provenance] >= TRUST[chosen[key].provenance]:
                chosen[key] = example
        self.examples = [chosen[key] for key in sorted(chosen)]
        self.disagreements = len(disputed_texts(given))

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.examples]

    def sha256(self) -> str:
        """Hash of the (normalised text, label) pairs: the data the head learns from, whatever their provenance."""
        digest = hashlib.sha256()
        for example in self.examples:
            digest.update(json.dumps([example.text_hash, example.label]).encode("utf-8") + b"\n")
        return digest.hexdigest()

    def summary(self) -> TrainingDataSummary:
        return TrainingDataSummary(
            sha256=self.sha256(), size=len(self),
            by_provenance=dict(sorted(Counter(e.provenance for e in self.examples).items())),
            by_label=dict(sorted(Counter(self.labels).items())),
        )


class ExtractionRow(BaseModel):
    """One line of a labelled extraction jsonl file."""

    model_config = ConfigDict(coerce_numbers_to_str=True)
    id: str
    text: RowText
    expected: dict[str, Any]


def read_extraction_jsonl(path: Path) -> list[ExtractionRow]:
    return [row for _, row in jsonl_rows(decode_text(Path(path).read_bytes(), str(path)), ExtractionRow, str(path),
                                         "a labelled row {id, text, expected}")]
