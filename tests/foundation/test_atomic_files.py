"""Files written whole or not at all: their names, modes, links, and what a failed write leaves."""

from __future__ import annotations

import os

import pytest

from shared.foundation.atomic_files import replace, write_new


def test_a_new_file_gets_the_mode_a_plain_open_gives_and_is_never_overwritten(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")  # the mode the process's umask gives
    path = tmp_path / "head.json"
    write_new(path, b"{}")
    assert path.read_bytes() == b"{}" and path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    with pytest.raises(FileExistsError):
        write_new(path, b"[]")
    assert path.read_bytes() == b"{}" and sorted(p.name for p in tmp_path.iterdir()) == ["head.json", "plain"]


def test_on_a_file_system_without_hard_links_a_new_file_is_still_written_once(tmp_path, monkeypatch):
    def no_hard_links(source, target):
        raise PermissionError(1, "Operation not permitted")  # what FAT and SMB shares answer

    monkeypatch.setattr(os, "link", no_hard_links)
    path = tmp_path / "head.json"
    write_new(path, b"{}")
    assert path.read_bytes() == b"{}" and [p.name for p in tmp_path.iterdir()] == ["head.json"]
    with pytest.raises(FileExistsError):
        write_new(path, b"[]")


def test_a_replaced_file_keeps_its_mode_and_a_symbolic_link_keeps_pointing_at_it(tmp_path):
    target = tmp_path / "real.yaml"
    target.write_text("a: 1\n")
    target.chmod(0o640)
    link = tmp_path / "task.yaml"
    link.symlink_to(target)
    replace(link, b"a: 2\n")
    assert link.is_symlink() and target.read_text() == "a: 2\n" and target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.yaml", "task.yaml"]


def test_a_write_that_fails_leaves_the_old_file_and_no_partial_one(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text("a: 1\n")
    with pytest.raises(TypeError):
        replace(path, "not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        write_new(tmp_path / "new.json", "not bytes")  # type: ignore[arg-type]
    assert path.read_text() == "a: 1\n" and [p.name for p in tmp_path.iterdir()] == ["task.yaml"]
