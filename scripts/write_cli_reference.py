"""Write docs/cli.md, the command line's reference, from the command definitions (the Typer app's commands),
so that it cannot drift from them.

    python scripts/write_cli_reference.py           write docs/cli.md again after changing a command
    python scripts/write_cli_reference.py --check   exit 1 if docs/cli.md is not what it would write

tests/cli/test_cli_reference.py runs the same check.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import typer.main

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.cli import app  # noqa: E402  (after the path: the script runs from a clone without installing)

REFERENCE = REPO / "docs" / "cli.md"
HEADER = """# Command line reference

Every `smallfirst` command, argument and option, written by `scripts/write_cli_reference.py` from the command
definitions: do not edit by hand (`tests/cli/test_cli_reference.py` fails when it is not current). Each command also
answers `--help`.
"""


# Typer's commands and parameters are click's (Typer vendors click, so they are typed loosely here).


def _default(param) -> str:
    default = param.default
    flag = param.param_type_name == "option" and param.is_flag
    if param.required or default is None or default == () or (flag and not default and not param.secondary_opts):
        return ""
    if isinstance(default, Path):  # a path in this clone, as it would be in any other
        default = default.relative_to(REPO) if default.is_relative_to(REPO) else default
    if flag and param.secondary_opts:
        return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
    return f"`{default}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _params(command) -> list[str]:
    rows = ["| argument or option | default | what it is |", "| --- | --- | --- |"]
    for param in command.params:
        if param.param_type_name == "argument":
            name = f"`{param.name.upper()}`" + ("" if param.required else " (optional)")
        else:
            name = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
            name += " (required)" if param.required else ""
        rows.append(f"| {name} | {_cell(_default(param))} | {_cell(getattr(param, 'help', None) or '')} |")
    return rows if len(rows) > 2 else []


def _section(command, ctx) -> list[str]:
    usage = command.get_usage(ctx).removeprefix("Usage: ").strip()
    lines = [f"## `{ctx.command_path}`", "", inspect.cleandoc(command.help or ""), "", "```", usage, "```", ""]
    params = _params(command)
    return lines + (params + [""] if params else [])


def reference() -> str:
    group = typer.main.get_command(app)
    root = group.make_context("smallfirst", [], resilient_parsing=True)  # parses nothing, runs nothing
    lines = [HEADER, *_section(group, root)]
    for name, command in group.commands.items():  # in the order `smallfirst --help` lists them
        lines += _section(command, command.make_context(name, [], parent=root, resilient_parsing=True))
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is not current")
    args = parser.parse_args()
    text = reference()
    if args.check:
        current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.is_file() else ""
        sys.exit(0 if current == text else f"{REFERENCE} is not current: run python scripts/write_cli_reference.py")
    REFERENCE.write_text(text, encoding="utf-8")
    print(f"-> {REFERENCE}")


if __name__ == "__main__":
    main()
