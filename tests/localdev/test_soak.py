"""The reduced soak of issue #11 (bench/soak.py): about 200 items through Azurite and the local host as a
subprocess, 30% injected tier faults, one SIGKILL of the host mid-run, overwrites and identical re-uploads;
then the audit's figures. Before it, quick tests that the harness's parts measure what they claim to."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from bench.fault_proxy import FAULT_KINDS, FakeTier, FaultProxy
from bench.soak import LABELS, TASK, TASK_FILE, Input, Output, SoakConfig, StorageView, Version, audit, run_soak
from tests.conftest import REPO

SHA_OLD = "0" * 64


# -- the harness's parts ---------------------------------------------------------------------------------------
def _tier_settings(monkeypatch, endpoint: str):
    import tempfile
    from pathlib import Path

    from shared.core.cascade import Cascade

    tasks = Path(tempfile.mkdtemp())
    (tasks / f"{TASK}.yaml").write_text(TASK_FILE)
    for key, value in {"SMALLFIRST_SMALL_BACKEND": "openai_compatible", "SMALLFIRST_SMALL_ENDPOINT": endpoint,
                       "SMALLFIRST_SMALL_LOGPROBS": "true", "SMALLFIRST_SMALL_TIMEOUT_S": "1",
                       "SMALLFIRST_SMALL_MAX_ATTEMPTS": "2", "SMALLFIRST_TASKS_DIR": str(tasks)}.items():
        monkeypatch.setenv(key, value)
    return Cascade.from_env()


def _classify(cascade, text: str):
    from shared.foundation.records import Item

    return cascade.run_batch(cascade.tasks.get(TASK), [Item(id="x", text=text)])[0]


def test_fake_tier_answers_each_item_with_a_label_and_counts_answers_per_item(monkeypatch):
    with FakeTier(LABELS, low_confidence_rate=0.0) as tier, FaultProxy(tier.url, fault_rate=0.0) as proxy:
        cascade = _tier_settings(monkeypatch, proxy.url)
        started = time.monotonic()
        first = _classify(cascade, "[soak:k1] I was charged twice")
        again = _classify(cascade, "[soak:k1] I was charged twice")
        other = _classify(cascade, "[soak:k2] The app crashes")
    assert first.status == "accepted" and first.answer in LABELS and again.answer == first.answer
    assert other.status == "accepted"
    assert tier.answers == Counter({"k1": 2, "k2": 1})
    assert {key: len(times) for key, times in tier.answer_arrivals.items()} == {"k1": 2, "k2": 1}
    assert all(started <= t <= time.monotonic() for times in tier.answer_arrivals.values() for t in times)
    assert proxy.forwarded_ok == Counter({"k1": 2, "k2": 1}) and not proxy.faults


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_injected_fault_is_retried_by_the_tier_client_and_never_reaches_the_tier(monkeypatch, kind):
    with FakeTier(LABELS) as tier, FaultProxy(tier.url, fault_rate=1.0, kinds=(kind,), hang_s=1.5) as proxy:
        cascade = _tier_settings(monkeypatch, proxy.url)
        record = _classify(cascade, "[soak:k9] I was charged twice")
    assert record.status == "failed"
    assert proxy.faults["k9"] == Counter({kind: 2})  # both attempts: the fault was transient, so retried
    assert not tier.answers and not proxy.forwarded_ok


def test_faults_depend_only_on_seed_item_and_call_number():
    a, b = FaultProxy("127.0.0.1:9", fault_rate=0.3, seed=5), FaultProxy("127.0.0.1:9", fault_rate=0.3, seed=5)
    calls = [(f"k{i}", n) for i in range(300) for n in range(3)]
    assert [a.fault_for(*c) for c in calls] == [b.fault_for(*c) for c in calls]
    assert 0.22 < sum(a.fault_for(*c) is not None for c in calls) / len(calls) < 0.38


class _View(StorageView):
    def __init__(self, outputs: list[Output]) -> None:
        self.outputs = {(o.container, o.name): o for o in outputs}


def _out(container: str, name: str, sha: str | None, body) -> Output:
    meta = {"source_sha256": sha} if sha and container != "deadletter" else {}
    if container == "deadletter":
        body = {**body, "source_sha256": sha}
    return Output(container, f"{TASK}/{name}", "e", meta, body)


def _rec(i: str, status: str = "accepted") -> dict:
    return {"id": i, "task": TASK, "status": status, "answer": "billing"}


def test_audit_finds_lost_duplicate_and_stale_outputs_from_storage_alone():
    def inp(name: str, items: list[str]) -> Input:
        return Input(name, "x", [Version(name.encode(), [(i, i) for i in items], bad=not items)])

    inputs = {i.name: i for i in [
        inp("big.jsonl", ["a1", "a2", "a3"]),  # fanned out in parts of 2; an old third part is left
        inp("one.json", ["b1", "b2"]),  # a single item became a list: the old .json.json is left
        inp("bad.txt", []),  # overwritten with unreadable content: the old result is left
        inp("dup.jsonl", ["d1", "d2"]),
        inp("lost.txt", ["lost"]),
    ]}
    new = {name: i.current.sha for name, i in inputs.items()}
    view = _View([
        _out("results", "big.jsonl/manifest.json", new["big.jsonl"], {"parts": 2, "complete": True}),
        _out("results", "big.jsonl/part-00000.jsonl", new["big.jsonl"], [_rec("a1"), _rec("a2")]),
        _out("results", "big.jsonl/part-00001.jsonl", new["big.jsonl"], [_rec("a3")]),
        _out("results", "big.jsonl/part-00002.jsonl", SHA_OLD, [_rec("old")]),
        _out("results", "one.json.jsonl", new["one.json"], [_rec("b1"), _rec("b2", "needs_review")]),
        _out("review", "one.json.jsonl", new["one.json"], [_rec("b2", "needs_review")]),
        _out("results", "one.json.json", SHA_OLD, _rec("one")),
        _out("results", "bad.txt.json", SHA_OLD, _rec("bad")),
        _out("deadletter", "bad.txt.json", new["bad.txt"], {"reason": "empty"}),
        _out("results", "dup.jsonl.jsonl", new["dup.jsonl"], [_rec("d1"), _rec("d2"), _rec("d1")]),
        _out("results", "dup.jsonl/claim", SHA_OLD, {"owner": "someone"}),  # not an output name: not judged
    ])
    tier = FakeTier(LABELS)
    # a2: asked for by the killed host (its request reached the tier at 9.0, the answer may have come later) and
    # again after the restart at 10.0; b1: answered three times by the same host, all after the restart
    arrivals = {"a1": [11.0], "a2": [9.0, 12.0], "a3": [11.5], "b1": [10.5, 13.0, 14.0]}
    for key, times in arrivals.items():
        tier.answers[key] = len(times)
        tier.answer_arrivals[key] = times
    report = audit(view, inputs, tier, FaultProxy("127.0.0.1:9"), 10.0, chunk_items=2)
    assert (report["items"], report["results"], report["lost"]) == (8, 7, 1)
    assert report["duplicate_records"] == 1 and report["review"] == 1
    assert report["stale_outputs"] == {"total": 4, "old_hash": 3, "surplus_parts": 1, "result_and_deadletter": 1}
    assert report["excess_model_calls"] == {"items": 2, "calls": 3, "items_across_kill": 1, "calls_across_kill": 1,
                                            "latest_answer_before_kill_s": 1.0, "identical_reuploads_reprocessed": 0}
    assert report["inputs_without_outcome"] == 1 and report["other_outputs"] == 1


# -- the reduced soak --------------------------------------------------------------------------------------------
REDUCED = SoakConfig(items=200, chunk_items=10, fault_rate=0.3, kill_at=0.5, overwrites=6, reuploads=3, seed=11,
                     timeout_s=170, quiet_s=4, verbose=False)


@pytest.fixture(scope="module")
def soak() -> dict:
    if not (REPO / "node_modules" / ".bin" / "azurite").exists():
        pytest.skip("Azurite is not installed (npm install)")
    started = time.monotonic()
    report = run_soak(REDUCED)
    print(f"reduced soak ({time.monotonic() - started:.0f} s):", json.dumps(report, separators=(",", ":")))
    return report


def _why(report: dict, *keys: str) -> str:
    return json.dumps({k: report["examples"][k] for k in keys} | {"run": report["run"]})


@pytest.mark.azurite
def test_reduced_soak_ran_as_planned_faults_a_kill_and_every_overwrite(soak):
    run = soak["run"]
    assert run["quiet"], "the system did not go quiet within the time limit"
    assert run["hosts_started"] == 2 and run["overwrites"] == REDUCED.overwrites and run["overwrites_not_done"] == 0
    assert run["identical_reuploads"] == REDUCED.reuploads
    assert sum(soak["model"]["faults"].values()) > 0.2 * soak["model"]["calls"]


@pytest.mark.azurite
def test_reduced_soak_loses_no_item(soak):
    assert soak["lost"] == 0 and soak["results"] == soak["items"], _why(soak, "lost")


@pytest.mark.azurite
def test_reduced_soak_gives_every_input_an_outcome(soak):
    assert soak["inputs_without_outcome"] == 0, _why(soak, "without_outcome")


@pytest.mark.azurite
def test_reduced_soak_writes_no_duplicate_record(soak):
    assert soak["duplicate_records"] == 0, _why(soak, "duplicates")


@pytest.mark.azurite
def test_reduced_soak_completes_every_manifest(soak):
    assert soak["incomplete_manifests"] == 0, _why(soak, "incomplete_manifests")


@pytest.mark.azurite
def test_reduced_soak_does_not_process_an_identical_reupload_again(soak):
    assert soak["excess_model_calls"]["identical_reuploads_reprocessed"] == 0, _why(soak, "excess")


@pytest.mark.azurite
def test_reduced_soak_leaves_no_output_of_older_content_after_overwrites(soak):
    assert soak["stale_outputs"]["total"] == 0, json.dumps(soak["stale_outputs"]) + _why(soak, "stale", "result_and_deadletter")


# An answer is kept (written under the claim) moments after it arrives, even on a busy machine: one paid for
# again across the kill that had arrived longer before it than this means keeping failed.
KEPT_WITHIN_S = 2.0


@pytest.mark.azurite
def test_reduced_soak_resends_across_a_kill_only_items_answered_in_the_moment_before_it(soak):
    """Answered items are kept as soon as they are paid for, so after a SIGKILL only an item whose answer
    arrived in the moment before it, not yet kept, goes to the model again. There can be several: each host
    worker has up to a part's items in flight at once."""
    excess = soak["excess_model_calls"]
    assert excess["latest_answer_before_kill_s"] <= KEPT_WITHIN_S, json.dumps(excess) + _why(soak, "excess")


@pytest.mark.azurite
def test_reduced_soak_sends_no_item_to_the_model_twice_without_a_kill_in_between(soak):
    """The part of the above that no crash explains: two live deliveries of the same work both calling the model."""
    excess = soak["excess_model_calls"]
    assert excess["items"] - excess["items_across_kill"] == 0, json.dumps(excess) + _why(soak, "excess")
