"""Writing back to task files: only the keys a command sets change; the user's comments and layout stay."""

from __future__ import annotations

import yaml

from shared.foundation.task_files import update_task_file
from tests.conftest import REPO

TASK = """\
# Routing for the support inbox: owned by the help-desk team.
name: ticket
kind: classification
instruction: Route the ticket.  # keep it short
labels:
- name: billing
- name: other
tiers:
- trained
- frontier

# Thresholds below are written by smallfirst tune.
tier_thresholds:
  trained: 0.5
trained_head: '20260101T000000.000000Z'
"""


def changed_lines(before: str, after: str) -> list[str]:
    return [line for line in after.splitlines() if line not in before.splitlines()]


def test_updating_keys_replaces_only_their_blocks_and_keeps_every_comment(tmp_path):
    path = tmp_path / "ticket.yaml"
    path.write_text(TASK)
    update_task_file(path, {"tier_thresholds": {"trained": 0.61, "small": 0.8}, "trained_head": "20261203T000000Z"})
    after = path.read_text()
    assert yaml.safe_load(after) == {**yaml.safe_load(TASK), "tier_thresholds": {"trained": 0.61, "small": 0.8},
                                     "trained_head": "20261203T000000Z"}
    for line in TASK.splitlines():
        if line.startswith("#") or "# keep it short" in line or line.startswith("- "):
            assert line in after.splitlines()
    assert changed_lines(TASK, after) == ["  trained: 0.61", "  small: 0.8", "trained_head: 20261203T000000Z"]


def test_a_key_the_file_lacks_is_appended_and_a_sequence_block_is_replaced_whole(tmp_path):
    path = tmp_path / "ticket.yaml"
    path.write_text(TASK)
    update_task_file(path, {"tiers": ["trained", "small", "frontier"], "threshold": 0.7})
    data = yaml.safe_load(path.read_text())
    assert data["tiers"] == ["trained", "small", "frontier"] and data["threshold"] == 0.7
    assert data["tier_thresholds"] == {"trained": 0.5}
    assert path.read_text().startswith("# Routing for the support inbox")
    assert path.read_text().rstrip().endswith("threshold: 0.7")


def test_a_layout_the_edit_cannot_follow_is_written_whole_with_the_right_values(tmp_path):
    path = tmp_path / "ticket.yaml"
    # A comment at column 0 inside a mapping's block: replacing the block line by line would leave its rest behind.
    path.write_text("name: ticket\ntier_thresholds:\n# the trained tier's\n  trained: 0.5\nkind: classification\n")
    update_task_file(path, {"tier_thresholds": {"trained": 0.9}})
    assert yaml.safe_load(path.read_text()) == {"name": "ticket", "tier_thresholds": {"trained": 0.9},
                                                "kind": "classification"}


def test_every_shipped_task_file_reads_back_unchanged_after_rewriting_its_tiers(tmp_path):
    for source in sorted((REPO / "tasks").glob("*.yaml")):
        path = tmp_path / source.name
        path.write_text(source.read_text())
        data = yaml.safe_load(source.read_text())
        update_task_file(path, {"tiers": data["tiers"]})
        assert yaml.safe_load(path.read_text()) == data
        assert path.read_text() == source.read_text()  # the same block, written as YAML writes it


def test_a_json_task_file_is_updated_as_json_and_still_loads(tmp_path):
    import json

    from shared.foundation.tasks import load_task_file

    path = tmp_path / "ticket.json"
    path.write_text(json.dumps(yaml.safe_load(TASK)))
    update_task_file(path, {"threshold": 0.75, "trained_head": "20260202T000000.000000Z"})
    data = json.loads(path.read_text())
    assert data["threshold"] == 0.75 and data["labels"] == [{"name": "billing"}, {"name": "other"}]
    task = load_task_file(path)
    assert (task.threshold, task.trained_head) == (0.75, "20260202T000000.000000Z")


def test_an_update_replaces_the_file_whole_so_a_reader_sees_the_old_text_or_the_new_never_a_part(tmp_path):
    path = tmp_path / "ticket.yaml"
    path.write_text(TASK)
    path.chmod(0o640)
    with path.open() as reader:  # opened before the update, read after it
        update_task_file(path, {"threshold": 0.75})
        assert reader.read() == TASK  # a rewrite in place would have truncated what it reads
    assert "threshold: 0.75" in path.read_text() and path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["ticket.yaml"]  # no temporary left behind
