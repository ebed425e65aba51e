"""Every blob name smallfirst reads or writes, derived from the input's name in one place.

An input `incoming/<task>/<name>` has:

    results/<task>/<name>.json                 one item (a .txt, .md or single-item .json)
    results/<task>/<name>.jsonl                several items, in input order
    results/<task>/<name>/part-NNNNN.jsonl     a fanned-out part of a large .jsonl
    results/<task>/<name>/manifest.json        the parts, and whether all are done
    review/<task>/<name>.jsonl                 items that need a person (or review/<task>/<name>/part-NNNNN.jsonl)
    deadletter/<task>/<name>.json              why the input (or deadletter/<task>/<name>/part-NNNNN.json a part)
                                               could not be processed, or which of its lines could not
    deadletter/_/<kind>-<hash>.json            a queue message that failed every try and names no input
    claims/<task>/<name>/<sha256>[/part-NNNNN] the claim of the worker on that content (or part of it), and
                                  .../items/<hash of id>.json the records it has paid for so far

An input name too long for these (Azure caps a blob name at 1,024 characters and 254 segments) has its
outputs under a short stem instead, `<task>/<start of name>~<hash>`: only its dead letter, `name_too_long`.
So do an input named as another's part, `<name>/part-NNNNN` (no extension: its one output is its dead
letter, `unsupported_format`, which would otherwise be the other input's part's), and one in a folder named
`_` (an unknown task), whose outputs' names would otherwise be those of a blob outside any task folder.

Records that belong to a task rather than to one input:

    shadow/<task>/<yyyy-mm-dd>.jsonl           shadow pairs (an accepted answer and the frontier's), an append blob
    corrections/<task>/<hash>.json             a person's review decision on an item (hash of its input and id)
    models/<task>/...                          trained heads, their activations and promotion decisions
                                               (shared/learning/artifact.py, activation.py, promotion.py)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date


# The app setting naming the account that holds every container here: a connection string, or identity-based
# DataStorage__blobServiceUri / __queueServiceUri (functions/services.py, the CLI and the bindings all use it).
DATA_CONNECTION = "DataStorage"

# Azure's caps on a blob name. The longest name derived from an input's path, a checkpoint
# (<path>/<sha256>/part-NNNNN/items/<hash>.json), adds 120 characters and 4 segments to it.
BLOB_NAME_MAX_CHARS = 1024
BLOB_NAME_MAX_SEGMENTS = 254
LONGEST_SUFFIX_CHARS = 120
LONGEST_SUFFIX_SEGMENTS = 4
# Every output's metadata: the input's content (SHA-256) and version (etag) it was made from.
HASH_KEY, ETAG_KEY = "source_sha256", "source_etag"


@dataclass(frozen=True)
class Containers:
    incoming: str = "incoming"
    results: str = "results"
    review: str = "review"
    deadletter: str = "deadletter"
    claims: str = "claims"
    shadow: str = "shadow"
    corrections: str = "corrections"
    models: str = "models"

    def all(self) -> list[str]:
        return [self.incoming, self.results, self.review, self.deadletter, self.claims, self.shadow,
                self.corrections, self.models]

    def outputs(self) -> list[str]:
        """The containers holding an input's outcome (all but its claims)."""
        return [self.results, self.review, self.deadletter]


def shadow_day(task: str, day: date) -> str:
    return f"{task}/{day.isoformat()}.jsonl"


def poison_deadletter(kind: str, message_text: str) -> str:
    """In the deadletter container: a queue message that failed every try, or was refused unread, and names no
    input (`kind` says which: `poison` for the work queue, `shadow-poison` and `shadow-invalid` for the shadow
    queue's), by its text's hash."""
    return f"_/{kind}-{hashlib.sha256(message_text.encode('utf-8', 'replace')).hexdigest()[:16]}.json"


def shadow_claim(task: str, source: str, item_id: str) -> str:
    """In the claims container: written before the frontier is paid to shadow an item, so it is paid once."""
    key = hashlib.sha256(f"{source}\n{item_id}".encode("utf-8")).hexdigest()[:32]
    return f"_shadow/{task}/{key}"


def correction(task: str, source: str, item_id: str) -> str:
    """A decision on item `item_id` of input `source` (`<task>/<name>`): ids are unique within one input only
    (they often restart at 1 in each file), and may hold any character; the name uses a hash of both, the
    record itself the id and its metadata the source."""
    key = hashlib.sha256(f"{source}\n{item_id}".encode("utf-8")).hexdigest()[:32]
    return f"{task}/{key}.json"


def _part(n: int) -> str:
    return f"part-{n:05d}"


@dataclass(frozen=True)
class InputBlob:
    """One input, by task and name: its path in the incoming container is `<task>/<name>`, and its outputs'
    names start with that path. A blob outside any task folder has task `_` for its outputs (its dead letter)."""

    task: str
    name: str
    containers: Containers = Containers()
    in_task_folder: bool = True

    @classmethod
    def from_path(cls, path: str, containers: Containers = Containers()) -> "InputBlob":
        """From a path inside the incoming container."""
        task, _, name = path.partition("/")
        return cls(task, name, containers) if name else cls("_", path, containers, in_task_folder=False)

    @property
    def path(self) -> str:
        return f"{self.task}/{self.name}"

    @property
    def incoming_path(self) -> str:
        return self.path if self.in_task_folder else self.name

    @property
    def name_fits(self) -> bool:
        """Whether every output's name can start with the input's path and stay within Azure's caps."""
        return (_azure_length(self.path) + LONGEST_SUFFIX_CHARS <= BLOB_NAME_MAX_CHARS
                and self.path.count("/") + 1 + LONGEST_SUFFIX_SEGMENTS <= BLOB_NAME_MAX_SEGMENTS)

    @property
    def stem(self) -> str:
        """What every output's name starts with: the input's path, or a short stem in the task's folder, its
        start kept to be recognised and its hash to tell it apart, for a name too long for that or one whose
        outputs would be another input's: named as its part (`<name>/part-NNNNN`, whose dead letter would be that
        part's), or in a folder named `_` (the outputs of blobs outside any task folder are named `_/<name>`), or with a
        segment that is empty, `.` or `..`."""
        owned = (not _PART_OF_ANOTHER.search(self.path) and (self.task != "_" or not self.in_task_folder)
                 and not (self.in_task_folder and has_unsafe_segment(self.name)))
        if self.name_fits and owned:
            return self.path
        digest = hashlib.sha256(self.path.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return f"{self.task[:100]}/{self.name[:200].replace('/', '_')}~{digest}"

    @property
    def source(self) -> str:
        return f"{self.containers.incoming}/{self.incoming_path}"

    @property
    def result_single(self) -> str:
        return f"{self.stem}.json"

    @property
    def result_lines(self) -> str:
        return f"{self.stem}.jsonl"

    @property
    def manifest(self) -> str:
        return f"{self.stem}/manifest.json"

    @property
    def part_prefix(self) -> str:
        return f"{self.stem}/part-"

    def part(self, n: int) -> str:
        return f"{self.stem}/{_part(n)}.jsonl"

    @property
    def review(self) -> str:
        return f"{self.stem}.jsonl"

    def review_part(self, n: int) -> str:
        return f"{self.stem}/{_part(n)}.jsonl"

    @property
    def deadletter(self) -> str:
        return f"{self.stem}.json"

    def deadletter_part(self, n: int) -> str:
        return f"{self.stem}/{_part(n)}.json"

    def claim(self, sha256: str, part: int | None = None) -> str:
        return f"{self.stem}/{sha256}" + (f"/{_part(part)}" if part is not None else "")

    def own_outputs(self, container: str, names: list[str]) -> list[str]:
        """Of `names` in an output container, those that belong to this input (not to an input whose name
        merely starts with this one's)."""
        exact = {self.containers.results: {self.result_single, self.result_lines, self.manifest},
                 self.containers.review: {self.review}, self.containers.deadletter: {self.deadletter}}[container]
        part = re.compile(re.escape(f"{self.stem}/") + r"part-\d{5}\.jsonl?$")
        return [n for n in names if n in exact or part.match(n)]


_OUTPUT = re.compile(r"^(?P<path>.+?)(?:/part-\d{5}\.jsonl|\.jsonl|\.json)$")
_PART_OF_ANOTHER = re.compile(r"/part-\d{5}$")


def has_unsafe_segment(path: str) -> bool:
    """Whether a path has an empty, `.` or `..` segment: Azure keeps such a name as written, but joined into other
    names or a URL it could point elsewhere, so work messages refuse it and its input is dead-lettered."""
    return any(segment in ("", ".", "..") for segment in path.split("/"))


def _azure_length(name: str) -> int:
    """A name's length as Azure counts characters (UTF-16 code units, as .NET strings do)."""
    return len(name.encode("utf-16-le", "surrogatepass")) // 2


def input_of_output(name: str, containers: Containers = Containers()) -> InputBlob | None:
    """The input a blob in results/ or review/ was written for; None for a manifest (it holds no records) or a
    name of no output layout."""
    if name.endswith("/manifest.json"):
        return None
    match = _OUTPUT.match(name)
    return InputBlob.from_path(match["path"], containers) if match else None
