"""docs/cli.md is what scripts/write_cli_reference.py writes from the command definitions, and every argument and
option has help text to write there."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import typer.main

from shared.cli import app

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "write_cli_reference.py"


def test_docs_cli_md_is_what_the_script_writes_from_the_commands():
    spec = importlib.util.spec_from_file_location("write_cli_reference", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (REPO / "docs" / "cli.md").read_text(encoding="utf-8") == script.reference(), \
        "docs/cli.md is not current: run python scripts/write_cli_reference.py"


def test_the_scripts_check_passes_on_the_committed_reference():
    assert subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=REPO).returncode == 0


def test_every_argument_and_option_of_every_command_has_help_text():
    group = typer.main.get_command(app)
    missing = {(name, param.name) for name, command in group.commands.items() for param in command.params
               if not getattr(param, "help", None)}
    missing |= {("smallfirst", param.name) for param in group.params if not getattr(param, "help", None)}
    assert not missing
