"""`smallfirst smoke`: the command around shared/operations/smoke.py (registered in shared/cli/app.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from shared.core.config import PROJECT_ROOT
from shared.errors import ConfigError

DEFAULT_SAMPLE = PROJECT_ROOT / "samples" / "support_ticket" / "double-charge.txt"
STATUS_STYLE = {"passed": "green", "failed": "red", "skipped": "yellow"}


def smoke(
    outputs: Optional[Path] = typer.Option(None, "--outputs", exists=True, dir_okay=False,
                                           help="`pulumi stack output --json` saved to a file (else run in infra/)"),
    infra_dir: Path = typer.Option(PROJECT_ROOT / "infra", "--infra-dir", file_okay=False,
                                   help="where to run `pulumi stack output --json`"),
    sample: Path = typer.Option(DEFAULT_SAMPLE, "--sample", exists=True, dir_okay=False,
                                help="a file under samples/<task>/: uploaded to incoming/<task>/"),
    timeout: float = typer.Option(300.0, "--timeout", min=1.0, help="seconds to wait for the result blob"),
    local: bool = typer.Option(False, "--local", help="the local host on Azurite: no ARM, no function key"),
    connection_string: Optional[str] = typer.Option(None, "--connection-string",
                                                    help="with --local: the storage (default: $DataStorage)"),
    url: str = typer.Option("http://127.0.0.1:7071", "--url", help="with --local: the local host"),
    arm_url: str = typer.Option("https://management.azure.com", "--arm-url",
                                help="Azure Resource Manager (another cloud's, e.g. management.chinacloudapi.cn)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON instead of a table"),
) -> None:
    """Check a deployed environment end to end: upload a sample, wait for its result, read a function key
    through ARM, call /api/health and the task; print what worked and how long each step took."""
    from shared.operations.smoke import azure_smoke, local_smoke, read_stack_outputs

    if local:
        connection = connection_string or os.environ.get("DataStorage")
        if not connection:
            raise ConfigError("smoke --local: pass --connection-string or set DataStorage (Azurite: "
                              "UseDevelopmentStorage=true)")
        check = local_smoke(connection, url, sample, timeout)
    else:
        check = azure_smoke(read_stack_outputs(outputs, infra_dir), sample, timeout, arm_url)
    report = check.run()
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        table = Table("step", "status", "seconds", "detail", title=f"smallfirst smoke: {report.uploaded}")
        for step in report.steps:
            table.add_row(step.name, f"[{STATUS_STYLE[step.status]}]{step.status}[/]", f"{step.seconds:.2f}",
                          step.detail)
        # Wide enough for the details when the output is a file or a pipe (rich would assume 80 columns).
        (Console() if sys.stdout.isatty() else Console(width=200)).print(table)
    if report.failed:
        Console(stderr=True).print(f"[red]smoke failed: {', '.join(report.failed)}[/]", highlight=False)
        raise typer.Exit(1)
