"""Soak benchmark (issue #11): many items through Azurite and the local host, with faults, a kill and overwrites.

    python -m bench.soak [--items 2000] [--fault-rate 0.3] [--kill-at 0.5] [--overwrites 20] [--reuploads 10]
                         [--seed 1] [--chunk-items 50] [--timeout 1200]
                         [--latency-ms 20,50] [--client-timeout 2] [--hang 3] [--keep --workdir DIR]

What runs, all on 127.0.0.1:
- Azurite (localdev/azurite.py) with the four containers;
- the local Functions host (`python -m localdev.host`, the code of this checkout) as a subprocess, its small tier
  an `openai_compatible` endpoint with logprobs, a short client timeout and a few attempts;
- between the host and a fake OpenAI-compatible tier, a fault-injecting proxy (bench/fault_proxy.py):
  `--fault-rate` of the calls get a 429, a 500, a hang past the timeout, a truncated or a garbled body.

The corpus: `--items` items, each with a unique marker `[soak:<key>]` in its text, over `.txt` files (one
item), `.json` files (one item, or `{"items": [...]}`) and `.jsonl` files, some larger than `--chunk-items` so
they fan out to the chunk queue; plus a few unreadable inputs that must end as dead letters.
While it runs: the host is SIGKILLed once `--kill-at` of the items have results, and a new one started;
`--overwrites` inputs get new content once their first outcome exists (a fanned-out `.jsonl` replaced by a
shorter one, a one-item `.json` by an items list, an items list by one item, a good input by an unreadable
one and the reverse, the rest new content of the same kind); `--reuploads` inputs are uploaded again with
identical content, which must not be processed again.

A slow tier (`--latency-ms 1000,2000 --client-timeout 5 --hang 6`) makes parts wait in the host longer than
the chunk queue's visibility timeout, which is what sends one part to the model twice without any crash.

When the system is quiet (no output changed for `--quiet` seconds and the chunk queues are empty; bounded by
`--timeout`) the audit reads only the storage API (blobs, their metadata and content) and the fake tier's
counters, prints a table and one line of JSON, and `run_soak` returns the same figures as a dict:

    inputs, items, results, review, failed, dead letters, inputs without an outcome,
    lost                  current items with no record in a result of the current content
    duplicate_records     the same item id more than once in the current results of one input
    excess_model_calls    items the tier answered more than once (retries of faults are not answers), and the
                          surplus answers; split into items answered before the kill and again after it
                          (by when the answer's request reached the tier: one on its way at the kill counts as
                          before it, since the killed host asked for it and never received it)
    stale_outputs         outputs of older content: a blob whose source_sha256 is not the current input's,
                          a part beyond the current manifest's part count, an input with a result next to a
                          dead letter (a per-line dead letter of the same content excepted)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fault_proxy import FakeTier, FaultProxy

REPO = Path(__file__).resolve().parents[1]
TASK = "ticket"
LABELS = ["billing", "technical", "account", "other"]
# The support-ticket labels answered by the small tier alone: the soak measures the pipeline, not the models.
TASK_FILE = f"""\
kind: classification
instruction: Route the customer support ticket to the team that should handle it.
threshold: 0.5
tiers: [small]
labels: [{", ".join("{name: %s}" % label for label in LABELS)}]
"""
CONTAINERS = ("incoming", "results", "review", "deadletter", "claims")
OUTPUTS = ("results", "review", "deadletter")
QUEUES = ("smallfirst-work", "smallfirst-work-poison")
HASH_KEY = "source_sha256"
SENTENCES = [
    "I was charged twice for my subscription this month.",
    "Please send me an invoice with our VAT number.",
    "The export to CSV fails with an error 500 since yesterday.",
    "The app crashes when I open the settings page.",
    "I cannot sign in, the two-factor code is never accepted.",
    "How do I add a second administrator to our organisation?",
    "We would like to talk to sales about a partnership.",
    "Your product is great, just wanted to say thanks.",
    "The API returns 429 although we are far below our quota.",
    "Please close my account and delete my data.",
]


# -- the corpus ------------------------------------------------------------------------------------------------
@dataclass
class Version:
    data: bytes
    items: list[tuple[str, str]]  # (record id, marker key), in input order
    bad: bool = False  # unreadable: its outcome must be a dead letter

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Input:
    name: str  # in the task folder
    kind: str  # txt, json1, jsonlist, jsonl, bad
    versions: list[Version]
    plan: str | None = None  # shrink, to_list, to_single, to_bad, to_good, new, identical
    next_version: Version | None = None
    uploads: int = 0

    @property
    def path(self) -> str:
        return f"{TASK}/{self.name}"

    @property
    def current(self) -> Version:
        return self.versions[-1]


class CorpusBuilder:
    def __init__(self, seed: int, chunk_items: int) -> None:
        self.rng = random.Random(seed)
        self.chunk = chunk_items
        self.n_keys = 0
        self.n_files = 0

    def key(self) -> str:
        self.n_keys += 1
        return f"k{self.n_keys:06d}"

    def text(self, key: str) -> str:
        return f"[soak:{key}] {self.rng.choice(SENTENCES)}"

    def file_name(self, suffix: str) -> str:
        self.n_files += 1
        return f"f{self.n_files:05d}{suffix}"

    # one version of each kind (for .txt the record id is the file's stem, so it is given)
    def txt(self, stem: str) -> Version:
        key = self.key()
        return Version(self.text(key).encode(), [(stem, key)])

    def json1(self) -> Version:
        key = self.key()
        return Version(json.dumps({"id": key, "text": self.text(key)}).encode(), [(key, key)])

    def jsonlist(self, n: int) -> Version:
        keys = [self.key() for _ in range(n)]
        return Version(json.dumps({"items": [{"id": k, "text": self.text(k)} for k in keys]}).encode(),
                       [(k, k) for k in keys])

    def jsonl(self, n: int) -> Version:
        keys = [self.key() for _ in range(n)]
        lines = [json.dumps({"id": k, "text": self.text(k)}) for k in keys]
        return Version(("\n".join(lines) + "\n").encode(), [(k, k) for k in keys])

    @staticmethod
    def bad(which: int) -> Version:
        return Version([b'{"id": "broken", "text": "no closing brace"', b"", b"\xff\xfe not utf-8"][which % 3], [],
                       bad=True)

    def new_input(self, kind: str, n: int = 1) -> Input:
        if kind == "txt":
            name = self.file_name(".txt")
            return Input(name, kind, [self.txt(name.removesuffix(".txt"))])
        if kind == "json1":
            return Input(self.file_name(".json"), kind, [self.json1()])
        if kind == "jsonlist":
            return Input(self.file_name(".json"), kind, [self.jsonlist(n)])
        if kind == "jsonl":
            return Input(self.file_name(".jsonl"), kind, [self.jsonl(n)])
        raise ValueError(kind)

    def build(self, n_items: int, overwrites: int, reuploads: int, n_bad: int) -> list[Input]:
        chunk, rng = self.chunk, self.rng
        inputs: list[Input] = []
        planned: list[Input] = []
        if overwrites > 0:  # the overwrites the issue names, first
            big = self.new_input("jsonl", 4 * chunk + max(1, chunk // 2))  # 5 parts ...
            big.plan, big.next_version = "shrink", self.jsonl(2 * chunk + max(1, chunk // 2))  # ... replaced by 3
            one = self.new_input("json1")
            one.plan, one.next_version = "to_list", self.jsonlist(3)
            many = self.new_input("jsonlist", 3)
            many.plan, many.next_version = "to_single", self.json1()
            good = self.new_input("txt")
            good.plan, good.next_version = "to_bad", self.bad(1)
            broken = Input(self.file_name(".json"), "bad", [self.bad(0)])
            broken.plan, broken.next_version = "to_good", self.json1()
            planned = [big, one, many, good, broken][:overwrites]
            inputs += planned
        inputs += [Input(self.file_name(".json" if i % 3 == 0 else ".txt"), "bad", [self.bad(i)]) for i in range(n_bad)]
        counted = sum(len(i.current.items) for i in inputs)
        kinds = ["txt", "json1", "jsonlist", "jsonl", "jsonl_big"]
        weights = [0.45, 0.2, 0.15, 0.17, 0.03]  # about 6 items a file, as many small files as in the soak
        while counted < n_items:
            kind = rng.choices(kinds, weights)[0]
            left = n_items - counted
            if kind == "jsonlist":
                n = min(left, rng.randint(2, 8))
            elif kind == "jsonl":
                n = min(left, rng.randint(2, max(2, chunk // 2)))
            elif kind == "jsonl_big":
                kind, n = "jsonl", min(left, rng.randint(chunk + 1, 3 * chunk))
            else:
                n = 1
            if kind in ("jsonlist", "jsonl") and n == 1:
                kind = "txt"
            new = self.new_input(kind, n)
            inputs.append(new)
            counted += len(new.current.items)
        rest = [i for i in inputs if i.plan is None and i.kind != "bad"]
        rng.shuffle(rest)
        for target in rest[: max(0, overwrites - len(planned))]:
            target.plan = "new"
            if target.kind == "txt":
                target.next_version = self.txt(target.name.removesuffix(".txt"))
            elif target.kind == "json1":
                target.next_version = self.json1()
            elif target.kind == "jsonlist":
                target.next_version = self.jsonlist(len(target.current.items))
            else:
                target.next_version = self.jsonl(max(1, len(target.current.items) - 1))
        for target in [i for i in rest if i.plan is None][:reuploads]:
            target.plan, target.next_version = "identical", target.current
        rng.shuffle(inputs)
        return inputs


# -- what storage holds ----------------------------------------------------------------------------------------
@dataclass
class Output:
    container: str
    name: str
    etag: str
    metadata: dict[str, str]
    body: Any = None  # a record dict, a list of record dicts (.jsonl), a manifest or a dead-letter dict
    role: str = "other"  # single, lines, part, manifest, review, review_part, deadletter, deadletter_part; classify()
    part: int | None = None

    @property
    def sha(self) -> str | None:
        if HASH_KEY in self.metadata:
            return self.metadata[HASH_KEY]
        if self.container == "deadletter" and isinstance(self.body, dict):
            if self.body.get(HASH_KEY):
                return self.body[HASH_KEY]
            try:  # a poison chunk's dead letter names the content in its message
                return json.loads(self.body.get("message") or "{}").get("sha256")
            except ValueError:
                return None
        return None

    @property
    def is_manifest(self) -> bool:
        return self.role == "manifest"

    def records(self) -> list[dict[str, Any]]:
        """The result records a results or review blob holds (none for anything else)."""
        if self.role not in ("single", "lines", "part", "review", "review_part"):
            return []
        return self.body if isinstance(self.body, list) else [self.body] if isinstance(self.body, dict) else []


class StorageView:
    """The output containers as last listed, with every blob's content (downloaded again only when its ETag changes)."""

    def __init__(self, service) -> None:
        self.service = service
        self.outputs: dict[tuple[str, str], Output] = {}
        self.changed_at = time.monotonic()

    def refresh(self) -> None:
        seen: dict[tuple[str, str], Output] = {}
        to_fetch: list[Output] = []
        for container in OUTPUTS:
            for blob in self.service.get_container_client(container).list_blobs(include=["metadata"]):
                key = (container, blob.name)
                old = self.outputs.get(key)
                if old is not None and old.etag == blob.etag:
                    seen[key] = old
                    continue
                out = Output(container, blob.name, blob.etag, dict(blob.metadata or {}))
                seen[key] = out
                to_fetch.append(out)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(self._fetch, to_fetch))
        if to_fetch or set(seen) != set(self.outputs):
            self.changed_at = time.monotonic()
        self.outputs = seen

    def _fetch(self, out: Output) -> None:
        try:
            data = self.service.get_blob_client(out.container, out.name).download_blob().readall()
        except Exception:  # deleted or replaced between listing and download: the next refresh sees it again
            out.etag = "?"
            return
        text = data.decode("utf-8", "replace")
        try:
            if out.name.endswith(".jsonl"):
                out.body = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                out.body = json.loads(text)
        except ValueError:
            out.body = None

    def queue_depth(self, queue_service) -> int:
        depth = 0
        for name in QUEUES:
            try:
                depth += queue_service.get_queue_client(name).get_queue_properties().approximate_message_count or 0
            except Exception:  # not created yet
                pass
        return depth


PART = re.compile(r"part-(\d{5})\.(jsonl|json)")


def classify(out: Output, inputs: dict[str, Input]) -> Input | None:
    """The input an output blob belongs to, by blob_names.InputBlob's naming rules; sets the blob's role.

    A blob in an output container that no rule names (a claim, a lock, a temporary blob) keeps role "other":
    it is counted, not read as records and not judged stale.
    """
    task, _, rest = out.name.partition("/")
    if task != TASK:
        return None
    if "/" in rest:
        name, leaf = rest.split("/", 1)
        inp = inputs.get(name)
        match = PART.fullmatch(leaf)
        if inp is None:
            return None
        if out.container == "results" and leaf == "manifest.json":
            out.role = "manifest"
        elif match and match.group(2) == ("json" if out.container == "deadletter" else "jsonl"):
            out.role, out.part = {"results": "part", "review": "review_part", "deadletter": "deadletter_part"}[
                out.container], int(match.group(1))
        return inp
    for suffix, roles in ((".jsonl", {"results": "lines", "review": "review"}),
                          (".json", {"results": "single", "deadletter": "deadletter"})):
        if rest.endswith(suffix) and rest.removesuffix(suffix) in inputs:
            out.role = roles.get(out.container, "other")
            return inputs[rest.removesuffix(suffix)]
    return None


def by_input(view: StorageView, inputs: dict[str, Input]) -> tuple[dict[str, list[Output]], list[Output]]:
    """Output blobs grouped by input name, and the blobs no input owns."""
    grouped: dict[str, list[Output]] = defaultdict(list)
    orphans = []
    for out in view.outputs.values():
        target = classify(out, inputs)
        if target is None:
            orphans.append(out)
        else:
            grouped[target.name].append(out)
    return grouped, orphans


def has_outcome(inp: Input, outs: list[Output]) -> bool:
    """The input's current content has a first outcome: a result, a complete manifest, or a dead letter."""
    sha = inp.current.sha
    for out in outs:
        if out.sha != sha:
            continue
        if out.role == "deadletter" or out.role in ("single", "lines"):
            return True
        if out.role == "manifest" and isinstance(out.body, dict) and out.body.get("complete"):
            return True
    return False


def found_ids(inp: Input, outs: list[Output]) -> Counter[str]:
    ids: Counter[str] = Counter()
    for out in outs:
        if out.role in ("single", "lines", "part") and out.sha == inp.current.sha:
            ids.update(str(r.get("id")) for r in out.records() if isinstance(r, dict))
    return ids


# -- the audit -------------------------------------------------------------------------------------------------
def audit(view: StorageView, inputs: dict[str, Input], tier: FakeTier, proxy: FaultProxy,
          restarted_at: float | None, chunk_items: int) -> dict[str, Any]:
    """`restarted_at`: when the host killed was replaced (time.monotonic), if it was; an answer whose request
    reached the tier before then was asked for by the killed host."""
    grouped, orphans = by_input(view, inputs)
    expected = sum(len(i.current.items) for i in inputs.values())
    lost: list[str] = []
    duplicates = 0
    duplicate_examples: list[str] = []
    results = review = failed = records_total = 0
    without_outcome: list[str] = []
    stale_hash: list[str] = []
    surplus_parts: list[str] = []
    both: list[str] = []
    incomplete_manifests: list[str] = []
    others: list[str] = []
    for inp in inputs.values():
        outs = grouped.get(inp.name, [])
        cur = inp.current
        ids = found_ids(inp, outs)
        records_total += sum(ids.values())
        for out in outs:
            if out.sha == cur.sha:
                if out.container == "review":
                    review += len(out.records())
                if out.container == "results":
                    failed += sum(1 for r in out.records() if isinstance(r, dict) and r.get("status") == "failed")
        for record_id, _ in cur.items:
            if ids.get(record_id):
                results += 1
            else:
                lost.append(f"{inp.name}#{record_id}")
        for record_id, count in ids.items():
            if count > 1:
                duplicates += count - 1
                duplicate_examples.append(f"{inp.name}#{record_id} x{count}")
        if not has_outcome(inp, outs):
            without_outcome.append(inp.name)
        # outputs of older content
        manifest = next((o for o in outs if o.is_manifest and o.sha == cur.sha), None)
        parts = manifest.body.get("parts") if manifest and isinstance(manifest.body, dict) else None
        for out in outs:
            where = f"{out.container}/{out.name}"
            if out.role == "other":
                others.append(where)
                continue
            if out.sha is not None and out.sha != cur.sha:
                stale_hash.append(where)
            if out.part is not None and (parts is None or out.part >= parts):
                surplus_parts.append(where)
        dead = [o for o in outs if o.role in ("deadletter", "deadletter_part")
                and not (isinstance(o.body, dict) and o.body.get("reason") == "invalid_lines" and o.sha == cur.sha)]
        if dead and any(o.role in ("single", "lines", "part", "manifest") for o in outs):
            both.append(inp.name)
        fanned = not cur.bad and len(cur.items) > chunk_items and inp.name.endswith(".jsonl")
        if fanned and not (manifest and isinstance(manifest.body, dict) and manifest.body.get("complete")):
            incomplete_manifests.append(inp.name)
    stale_blobs = sorted(set(stale_hash) | set(surplus_parts))
    keys = {key for inp in inputs.values() for v in inp.versions for _, key in v.items}
    answers = Counter({k: n for k, n in tier.answers.items()})
    excess = {k: n - 1 for k, n in answers.items() if n > 1}
    before_restart = Counter({k: sum(t < restarted_at for t in arrivals) for k, arrivals in tier.answer_arrivals.items()}
                             if restarted_at is not None else {})
    across_kill = {k: n for k, n in excess.items() if before_restart[k] >= 1 and answers[k] > before_restart[k]}
    # How long before the restart each of those was answered (its request reached the tier; the answer left 20-50
    # ms later): one kept as soon as paid for is only paid again if answered in the moment before the kill.
    answered_before_kill_s = [restarted_at - max(t for t in tier.answer_arrivals[k] if t < restarted_at)
                              for k in across_kill] if restarted_at is not None else []
    identical_keys = {key for inp in inputs.values() if inp.plan == "identical" for _, key in inp.current.items}
    return {
        "inputs": len(inputs),
        "items": expected,
        "results": results,
        "records": records_total,
        "review": review,
        "failed": failed,
        "dead_letters": sum(1 for o in view.outputs.values() if o.container == "deadletter"),
        "inputs_without_outcome": len(without_outcome),
        "lost": len(lost),
        "duplicate_records": duplicates,
        "excess_model_calls": {
            "items": len(excess), "calls": sum(excess.values()),
            "items_across_kill": len(across_kill), "calls_across_kill": sum(across_kill.values()),
            "latest_answer_before_kill_s": round(max(answered_before_kill_s, default=0.0), 3),
            "identical_reuploads_reprocessed": len(identical_keys & set(excess)),
        },
        "stale_outputs": {
            "total": len(stale_blobs) + len(both),
            "old_hash": len(stale_hash), "surplus_parts": len(surplus_parts),
            "result_and_deadletter": len(both),
        },
        "incomplete_manifests": len(incomplete_manifests),
        "orphan_outputs": len(orphans),
        "other_outputs": len(others),
        "model": {"answers": sum(answers.values()), "items_answered": len(answers),
                  "unknown_items": len(set(answers) - keys - {"?"}), **proxy.totals()},
        "examples": {
            "lost": lost[:5], "duplicates": duplicate_examples[:5], "without_outcome": without_outcome[:5],
            "stale": stale_blobs[:8], "result_and_deadletter": both[:5], "incomplete_manifests": incomplete_manifests[:5],
            "excess": sorted(excess.items(), key=lambda kv: -kv[1])[:5],
            "orphans": [f"{o.container}/{o.name}" for o in orphans[:5]], "others": others[:5],
        },
    }


def table(report: dict[str, Any]) -> str:
    e, s, m = report["excess_model_calls"], report["stale_outputs"], report["model"]
    rows = [
        ("inputs", report["inputs"]), ("items (current content)", report["items"]),
        ("results (items with a current record)", report["results"]), ("review records", report["review"]),
        ("failed records", report["failed"]), ("dead letters (blobs)", report["dead_letters"]),
        ("inputs without an outcome", report["inputs_without_outcome"]),
        ("items lost", report["lost"]), ("duplicate records", report["duplicate_records"]),
        ("items answered by the model more than once", e["items"]),
        ("  surplus model answers", e["calls"]),
        ("  of which items answered before and after the kill", e["items_across_kill"]),
        ("    answered this long before the kill, at most (s)", e["latest_answer_before_kill_s"]),
        ("  identical re-uploads processed again", e["identical_reuploads_reprocessed"]),
        ("stale outputs of older content", s["total"]),
        ("  blobs with an older source_sha256", s["old_hash"]),
        ("  parts beyond the current manifest", s["surplus_parts"]),
        ("  inputs with a result and a dead letter", s["result_and_deadletter"]),
        ("incomplete manifests", report["incomplete_manifests"]),
        ("model calls (proxy)", m["calls"]), ("  injected faults", sum(m["faults"].values())),
        ("  answers delivered (tier)", m["answers"]),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v:>8}" for k, v in rows]
    lines.append(f"{'faults by kind':<{width}}  {json.dumps(m['faults'])}")
    for name, examples in report["examples"].items():
        if examples:
            lines.append(f"e.g. {name}: {examples}")
    return "\n".join(lines)


# -- the run ---------------------------------------------------------------------------------------------------
@dataclass
class SoakConfig:
    items: int = 2000
    fault_rate: float = 0.3
    kill_at: float | None = 0.5  # fraction of items with results at which the host is SIGKILLed; None: no kill
    overwrites: int = 20
    reuploads: int = 10
    bad_inputs: int | None = None  # default: 2 + items // 500
    seed: int = 1
    chunk_items: int = 50
    timeout_s: float = 1200.0  # the whole run, uploads to audit
    quiet_s: float = 5.0
    client_timeout_s: float = 2.0
    hang_s: float = 3.0
    max_attempts: int = 4
    latency_ms: tuple[float, float] = (20.0, 50.0)
    low_confidence_rate: float = 0.1
    python: str = sys.executable
    workdir: Path | None = None
    keep: bool = False
    verbose: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)


class Soak:
    def __init__(self, cfg: SoakConfig) -> None:
        self.cfg = cfg
        self.workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="soak-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.hosts: list[subprocess.Popen] = []
        self.events: list[str] = []
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.1f}s] {text}"
        self.events.append(line)
        if self.cfg.verbose:
            print(line, file=sys.stderr, flush=True)

    def host_env(self, connection: str, endpoint: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLFIRST_") and k != "DataStorage"}
        env.update({
            "PYTHONPATH": str(REPO), "DataStorage": connection,
            "SMALLFIRST_SMALL_BACKEND": "openai_compatible", "SMALLFIRST_SMALL_ENDPOINT": endpoint,
            "SMALLFIRST_SMALL_LOGPROBS": "true", "SMALLFIRST_SMALL_TIMEOUT_S": str(self.cfg.client_timeout_s),
            "SMALLFIRST_SMALL_MAX_ATTEMPTS": str(self.cfg.max_attempts),
            "SMALLFIRST_CHUNK_ITEMS": str(self.cfg.chunk_items), "SMALLFIRST_TASKS_DIR": str(self.tasks_dir()),
            **self.cfg.extra_env,
        })
        return env

    def tasks_dir(self) -> Path:
        folder = self.workdir / "tasks"
        folder.mkdir(exist_ok=True)
        (folder / f"{TASK}.yaml").write_text(TASK_FILE)
        return folder

    def start_host(self, env: dict[str, str]) -> subprocess.Popen:
        from localdev.azurite import free_port

        n = len(self.hosts) + 1
        log = open(self.workdir / f"host-{n}.log", "wb")
        cmd = [self.cfg.python, "-m", "localdev.host", "--port", str(free_port()),
               "--settings", str(self.workdir / "no-local-settings.json")]
        proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.hosts.append(proc)
        self.say(f"host {n} started (pid {proc.pid})")
        return proc

    def stop_hosts(self) -> None:
        for proc in self.hosts:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)

    def run(self) -> dict[str, Any]:
        from azure.storage.blob import BlobServiceClient
        from azure.storage.queue import QueueServiceClient

        from localdev.azurite import Azurite

        cfg = self.cfg
        n_bad = 2 + cfg.items // 500 if cfg.bad_inputs is None else cfg.bad_inputs
        corpus = CorpusBuilder(cfg.seed, cfg.chunk_items).build(cfg.items, cfg.overwrites, cfg.reuploads, n_bad)
        inputs = {i.name: i for i in corpus}
        original_items = sum(len(i.current.items) for i in corpus)
        self.say(f"corpus: {len(corpus)} inputs, {original_items} items, "
                 f"{sum(1 for i in corpus if i.plan and i.plan != 'identical')} overwrites, "
                 f"{sum(1 for i in corpus if i.plan == 'identical')} identical re-uploads, workdir {self.workdir}")
        storage = Azurite(self.workdir / "azurite")
        tier = FakeTier(LABELS, latency_ms=cfg.latency_ms, low_confidence_rate=cfg.low_confidence_rate, seed=cfg.seed)
        proxy = FaultProxy("", fault_rate=cfg.fault_rate, hang_s=cfg.hang_s, seed=cfg.seed)
        restarted_at: float | None = None
        report: dict[str, Any] | None = None
        quiet = False
        try:
            storage.start()
            tier.start()
            proxy.upstream = tier.url.removeprefix("http://")
            proxy.start()
            service = BlobServiceClient.from_connection_string(storage.connection_string)
            queues = QueueServiceClient.from_connection_string(storage.connection_string)
            for container in CONTAINERS:
                service.create_container(container)
            env = self.host_env(storage.connection_string, proxy.url)
            host = self.start_host(env)
            incoming = service.get_container_client("incoming")

            def upload(inp: Input, version: Version) -> None:
                incoming.upload_blob(inp.path, version.data, overwrite=True)
                inp.uploads += 1

            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(lambda i: upload(i, i.current), corpus))
            self.say(f"uploaded {len(corpus)} inputs")
            last_upload = time.monotonic()
            view = StorageView(service)
            deadline = self.t0 + cfg.timeout_s
            killed = cfg.kill_at is None or cfg.kill_at <= 0
            pending = [i for i in corpus if i.plan]
            last_report = 0.0
            while time.monotonic() < deadline:
                time.sleep(1.0)
                view.refresh()
                grouped, _ = by_input(view, inputs)
                # overwrites, once the input's first outcome exists
                for inp in list(pending):
                    if has_outcome(inp, grouped.get(inp.name, [])):
                        assert inp.next_version is not None
                        if inp.plan != "identical":
                            inp.versions.append(inp.next_version)
                        upload(inp, inp.current)
                        pending.remove(inp)
                        last_upload = time.monotonic()
                        self.say(f"re-uploaded {inp.name} ({inp.plan})")
                done = 0
                for inp in corpus:
                    if len(inp.versions) > 1:  # overwritten after its first outcome
                        done += len(inp.versions[0].items)
                    else:
                        ids = found_ids(inp, grouped.get(inp.name, []))
                        done += sum(1 for rid, _ in inp.versions[0].items if ids.get(rid))
                if not killed and done >= cfg.kill_at * original_items:
                    host.send_signal(signal.SIGKILL)
                    host.wait(timeout=30)
                    self.say(f"SIGKILLed the host at {done}/{original_items} items with results")
                    killed = True
                    restarted_at = time.monotonic()  # nothing the new host asks for reaches the tier before this
                    host = self.start_host(env)
                depth = view.queue_depth(queues)
                now = time.monotonic()
                if now - last_report >= 5:
                    last_report = now
                    self.say(f"items with results {done}/{original_items}; outputs {len(view.outputs)}; queued parts "
                             f"{depth}; tier answers {sum(tier.answers.values())}; proxy {proxy.totals()}")
                stable = now - view.changed_at
                if host.poll() is not None:
                    self.say(f"the host exited with {host.returncode}; starting another")
                    host = self.start_host(env)
                if (killed and depth == 0 and stable >= cfg.quiet_s and now - last_upload >= cfg.quiet_s
                        and (not pending or stable >= 4 * cfg.quiet_s)):
                    quiet = True
                    break
            self.say("quiet" if quiet else "timed out before the system was quiet")
            view.refresh()
            report = audit(view, inputs, tier, proxy, restarted_at, cfg.chunk_items)
            report["run"] = {
                "quiet": quiet, "seconds": round(time.monotonic() - self.t0, 1), "seed": cfg.seed,
                "items_asked": cfg.items, "fault_rate": cfg.fault_rate, "kill_at": cfg.kill_at,
                "hosts_started": len(self.hosts), "overwrites": sum(1 for i in corpus if len(i.versions) > 1),
                "identical_reuploads": sum(1 for i in corpus if i.plan == "identical" and i.uploads > 1),
                "overwrites_not_done": len([i for i in pending if i.plan != "identical"]),
                "chunk_items": cfg.chunk_items, "max_attempts": cfg.max_attempts,
                "client_timeout_s": cfg.client_timeout_s, "latency_ms": list(cfg.latency_ms),
            }
            return report
        finally:
            self.stop_hosts()
            self.host_logs = host_log_stats(self.workdir)
            if report is not None:
                report["run"]["host_logs"] = self.host_logs
            proxy.stop()
            tier.stop()
            storage.stop()
            if not cfg.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)


def host_log_stats(workdir: Path) -> dict[str, int]:
    """What the hosts logged: bytes, and lines at ERROR (tracebacks) or naming a failed delete of a message."""
    stats = {"bytes": 0, "error_lines": 0, "tracebacks": 0}
    for log in sorted(workdir.glob("host-*.log")):
        data = log.read_bytes()
        stats["bytes"] += len(data)
        stats["error_lines"] += data.count(b" ERROR ")
        stats["tracebacks"] += data.count(b"Traceback (most recent call last)")
    return stats


def run_soak(cfg: SoakConfig) -> dict[str, Any]:
    return Soak(cfg).run()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction of items with results; 0: no kill")
    parser.add_argument("--overwrites", type=int, default=20)
    parser.add_argument("--reuploads", type=int, default=10)
    parser.add_argument("--bad-inputs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk-items", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds for the whole run")
    parser.add_argument("--quiet", type=float, default=5.0, help="seconds without a new output that mean done")
    parser.add_argument("--latency-ms", default="20,50", help="the fake tier's latency range, LO,HI")
    parser.add_argument("--client-timeout", type=float, default=2.0, help="SMALLFIRST_SMALL_TIMEOUT_S")
    parser.add_argument("--hang", type=float, default=3.0, help="seconds an injected hang lasts (past the timeout)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (host logs, Azurite data)")
    args = parser.parse_args(argv)
    cfg = SoakConfig(items=args.items, fault_rate=args.fault_rate, kill_at=args.kill_at or None,
                     overwrites=args.overwrites, reuploads=args.reuploads, bad_inputs=args.bad_inputs, seed=args.seed,
                     chunk_items=args.chunk_items, timeout_s=args.timeout, quiet_s=args.quiet, workdir=args.workdir,
                     keep=args.keep, latency_ms=tuple(float(x) for x in args.latency_ms.split(",")),
                     client_timeout_s=args.client_timeout, hang_s=max(args.hang, args.client_timeout + 1))
    report = run_soak(cfg)
    print(table(report))
    print(json.dumps(report, separators=(",", ":")))
    return report


if __name__ == "__main__":
    main()
