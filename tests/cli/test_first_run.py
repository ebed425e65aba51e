"""The usual first-run mistakes, provoked for real: each ends in one line that says what to do, no traceback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from localdev.azurite import Azurite, AzuriteError, PortInUseError, ensure_port_free

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# What scripts/bootstrap.sh runs before its first check (everything but node and npm).
BOOTSTRAP_TOOLS = ("bash", "dirname", "cat", "tr", "grep", "sort", "paste", "date", "head", "printf")


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def tools_dir(tmp_path: Path, python: Path | None) -> Path:
    """A PATH holding only the tools bootstrap needs, plus the given python3, and no node or npm."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in BOOTSTRAP_TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    if python is not None:
        (bin_dir / "python3").symlink_to(python)
    return bin_dir


def run_bootstrap(bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "bash"), str(REPO / "scripts" / "bootstrap.sh")], capture_output=True,
                          text=True, env={"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/tmp")}, timeout=60)


def test_bootstrap_without_npm_on_path_says_to_install_node_and_stops_before_installing(tmp_path):
    result = run_bootstrap(tools_dir(tmp_path, Path(os.path.realpath(sys.executable))))
    line = one_line_error(result)
    assert line.startswith("bootstrap: no node on PATH") and "install Node.js" in line
    assert "[2/" not in result.stdout  # stopped at the first step


def test_bootstrap_with_a_python_older_than_supported_names_the_version_and_the_fix(tmp_path):
    old_python = tmp_path / "python3.9"
    old_python.write_text("#!/bin/sh\necho 3.9\n")  # answers the version question as Python 3.9 would
    old_python.chmod(0o755)
    line = one_line_error(run_bootstrap(tools_dir(tmp_path, old_python)))
    assert "Python 3.11 or newer is needed" in line and "3.9" in line and "PYTHON=" in line


def test_local_host_on_a_busy_port_says_which_port_and_how_to_choose_another(busy_port):
    result = subprocess.run([sys.executable, "-m", "localdev.host", "--port", str(busy_port)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    line = one_line_error(result)
    assert f"port {busy_port}" in line and "already in use" in line and "--port" in line


def test_port_check_raises_for_a_busy_port_and_passes_a_free_one(busy_port):
    with pytest.raises(PortInUseError, match=f"port {busy_port}"):
        ensure_port_free(busy_port, "test")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    ensure_port_free(free, "test")


def test_azurite_that_cannot_start_reports_the_path_of_its_log(busy_port):
    azurite = Azurite()
    azurite.blob_port = busy_port  # taken after the free ports were chosen: Azurite itself fails to bind
    with pytest.raises(AzuriteError) as failure:
        azurite.start(timeout_s=30)
    message = str(failure.value)
    assert str(azurite.log_path) in message and "\n" not in message
    assert "EADDRINUSE" in azurite.log_path.read_text()
    azurite.log_path.unlink()


@pytest.mark.parametrize("args, expected", [
    (["classify", "no_such_task", "hello"], "no task named 'no_such_task'; known: banking77"),
    (["extract", "receipt", "{pdf}"], "unsupported file type .pdf"),
    (["run", "support_ticket", "--input", "{pdf}", "--output", "{out}"], "unsupported file type .pdf"),
    (["classify", "support_ticket", " \n "], "the text is empty"),
    (["run", "support_ticket", "--input", "{items}", "--output", "{items}"], "is the input"),
    (["run", "support_ticket", "--input", "{items}", "--output", "{tmp}/linked.jsonl"], "is the input"),
    (["run", "support_ticket", "--input", "{items}", "--output", "{tmp}/missing/out.jsonl"], "no such file"),
])
def test_cli_mistakes_are_one_line_without_a_traceback(tmp_path, args, expected):
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.4 binary")
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "text": "refund me"}\n')
    (tmp_path / "linked.jsonl").hardlink_to(items)  # the input under another name
    argv = [a.format(pdf=pdf, out=tmp_path / "out.jsonl", items=items, tmp=tmp_path) for a in args]
    result = subprocess.run([str(VENV_BIN / "smallfirst"), *argv], cwd=REPO, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "SMALLFIRST_LOCAL_PROFILE": "trained"})
    assert expected in one_line_error(result).lower()
    assert items.read_text() == '{"id": "a", "text": "refund me"}\n'  # the input is never overwritten


def test_a_run_whose_disk_fills_up_ends_in_one_line_naming_the_output(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "text": "refund me"}\n')
    result = subprocess.run([str(VENV_BIN / "smallfirst"), "run", "support_ticket", "-i", str(items), "-o", "/dev/full"],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "SMALLFIRST_LOCAL_PROFILE": "trained"})
    assert result.returncode == 2 and "Traceback" not in result.stderr  # the progress bar's last state comes first
    assert result.stderr.strip().splitlines()[-1] == "smallfirst: cannot write /dev/full: No space left on device"


def test_dropping_a_file_type_the_pipeline_does_not_take_is_refused_before_upload(tmp_path):
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    result = subprocess.run([sys.executable, "-m", "localdev.drop", "support_ticket", str(pdf)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    line = one_line_error(result)
    assert "scan.pdf" in line and ".jsonl" in line
