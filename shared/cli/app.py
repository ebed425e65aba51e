"""The `smallfirst` command line: the Typer app, each family's commands registered, the entry point."""

from __future__ import annotations

import sys

import typer

from shared.cli import evaluate, operate, run, train
from shared.cli.common import console
from shared.errors import SmallfirstError

app = typer.Typer(help="Small model first; frontier only when needed.", no_args_is_help=True, add_completion=False)
# In the order `smallfirst --help` lists them.
app.command()(run.run)
app.command()(run.classify)
app.command()(run.extract)
app.command()(run.tasks)
app.command()(run.health)
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
