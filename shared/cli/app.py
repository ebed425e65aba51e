"""The `smallfirst` command line: the Typer app, each family's commands registered, the entry point."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

import typer

from shared.cli import evaluate, operate, run, settings, train
from shared.cli.common import console
from shared.cli.local_settings import LOCAL_SETTINGS_FILE, load_local_settings
from shared.errors import SmallfirstError

# No locals in a traceback: they can hold keys.
app = typer.Typer(help="Small model first; frontier only when needed.", no_args_is_help=True, add_completion=True,
                  pretty_exceptions_show_locals=False)


def _print_version(asked: bool) -> None:
    if asked:
        print(f"smallfirst {version('smallfirst')}")
        raise typer.Exit()


@app.callback()
def load_settings(
    ctx: typer.Context,
    _version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                  help="print the version and exit"),
) -> None:
    """Small model first; frontier only when needed. Settings come from the environment, then from
    local.settings.json and .env in the current folder (the environment wins), as the local host reads them."""
    # every command's settings; which file each came from is kept for `smallfirst settings`
    ctx.obj = load_local_settings(Path.cwd() / LOCAL_SETTINGS_FILE)


# In the order `smallfirst --help` lists them.
app.command()(run.run)
app.command()(run.classify)
app.command()(run.extract)
app.command()(run.tasks)
app.command()(run.health)
app.command()(settings.settings)
app.command("eval")(evaluate.eval_command)
app.command()(evaluate.report)
app.command()(evaluate.tune)
app.command()(train.train)
app.command()(train.retrain)
app.command("export-finetune")(train.export_finetune)
app.command()(evaluate.compare)
app.command()(operate.stats)
app.command()(operate.review)
app.command()(operate.smoke)  # after pulumi up


def main() -> None:
    """The console entry point: a SmallfirstError (unknown task, bad setting, unusable input) is one line that
    says what is wrong, not a traceback."""
    try:
        app()
    except SmallfirstError as exc:
        console.print(f"[red]smallfirst: {exc}[/]")
        sys.exit(2)


if __name__ == "__main__":
    main()
