"""Operating a deployment: `stats` (volume, savings, live accuracy), `review` (the review queue in a terminal)
and `smoke` (a deployed environment checked end to end)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shared.cli.common import TASK_ARGUMENT, console, find_task, load_cascade, progress_bar, working
from shared.foundation import PROJECT_ROOT
from shared.foundation.tasks import AnyTask, ClassificationTask
from shared.errors import ConfigError, SmallfirstError

if TYPE_CHECKING:
    from shared.pipeline.review import PendingItem

DEFAULT_SAMPLE = PROJECT_ROOT / "samples" / "support_ticket" / "double-charge.txt"
STATUS_STYLE = {"passed": "green", "failed": "red", "skipped": "yellow"}


def _exit_in_one_line(message: str) -> NoReturn:
    """One line, whatever the terminal's width; names and paths are printed as they are, not as markup."""
    console.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def stats(
    task: Optional[str] = typer.Argument(None, help="one task (default: every task found)"),
    days: int = typer.Option(7, "--days", min=0, max=36_500, help="the last N days, today (UTC) included; 0 for every day"),
    results: list[Path] = typer.Option([], "--results", help="a local result file (.json/.jsonl) to read instead of "
                                       "the containers; repeat for several"),
    shadow: list[Path] = typer.Option([], "--shadow", help="a local shadow file (.jsonl); repeat for several"),
    html: Optional[Path] = typer.Option(None, "--html", help="also write a self-contained HTML page with plots"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON instead of tables"),
) -> None:
    """Volume, outcomes, escalations, cost against all-frontier, latency and live accuracy, per task and day.

    Reads results/, review/, shadow/ and corrections/ of the DataStorage account, or only the local files given."""
    from datetime import datetime, timedelta, timezone

    from shared.core.config import Settings
    from shared.errors import TaskError
    from shared.foundation.tasks import TaskCatalog
    from shared.monitoring.stats import confidence_drift, drift_level, summarise
    from shared.monitoring.stats_prices import task_prices
    from shared.monitoring.stats_sources import ContainerRecords, interactive_store, local_results, local_shadows
    from shared.monitoring.stats_tables import headline, task_tables

    try:
        if results or shadow:
            origin = "local files"
            found, pairs, corrections = local_results(results), local_shadows(shadow), []
        else:
            from shared.pipeline.blob_names import DATA_CONNECTION

            origin = f"the {DATA_CONNECTION} storage account"
            with progress_bar(shown=not as_json) as progress:
                def reading(container: str, blobs: int):
                    bar = progress.add_task(f"reading {container}/", total=blobs)
                    return lambda: progress.advance(bar)

                records = ContainerRecords(interactive_store(DATA_CONNECTION), task=task, reading=reading)
                found, pairs, corrections = records.results(), records.shadows(), records.corrections()
    except KeyError as exc:  # no storage connection configured
        _exit_in_one_line(exc.args[0])
    except ValueError as exc:  # an unreadable source (InputError) or a malformed connection string
        _exit_in_one_line(str(exc))
    since = datetime.now(timezone.utc).date() - timedelta(days=days - 1) if days else None
    settings = Settings.from_env()
    catalog = TaskCatalog(settings.tasks_dir)  # each task's prices, and its tuning reference for drift
    tasks = {name: spec for name, spec in catalog.each() if not isinstance(spec, TaskError)}
    summary = summarise(found, pairs, corrections, task=task, since=since,
                        prices={name: task_prices(spec, settings) for name, spec in tasks.items()})
    out = Console()
    window = f"since {since.isoformat()}" if since else "all days"
    if not summary.tasks:
        console.print(f"no records{f' of {task}' if task else ''} {window} in {origin}")
    if as_json:
        sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
    for task_stats in [] if as_json else summary.tasks:
        out.rule(f"{task_stats.task} ({window}, UTC)")
        out.print(headline(task_stats))
        for text_table in task_tables(task_stats):
            table = Table(*text_table.headers, title=text_table.title)
            for row in text_table.rows:
                table.add_row(*row)
            out.print(table)
        if task_stats.task in tasks:
            for tier, psi in confidence_drift(task_stats.confidences,
                                              tasks[task_stats.task].confidence_reference).items():
                out.print(f"confidence drift of {tier} against the run its threshold was tuned on: PSI {psi:.3f} "
                          f"({drift_level(psi)})")
    if summary.undated:
        console.print(f"[yellow]{summary.undated} result records carry no finished_at and are in no day[/]")
    if html is not None:
        from shared.monitoring.dashboard import stats_page

        try:
            html.write_text(stats_page(summary, origin), encoding="utf-8")
        except OSError as exc:
            _exit_in_one_line(f"{html}: {exc.strerror or exc}")
        console.print(f"stats page -> {html}")


def review(
    task: str = TASK_ARGUMENT,
    by: str = typer.Option(None, "--by", help="who decides (recorded in each correction; default: $USER); not with "
                           "--app, where the app records the account you signed in with"),
    app_url: Optional[str] = typer.Option(None, "--app", envvar="SMALLFIRST_REVIEW_APP",
                                          help="a deployed app's URL (stack output function_app_url): review through "
                                          "its review routes with your Azure sign-in, not the storage account"),
    scope: Optional[str] = typer.Option(None, "--scope", envvar="SMALLFIRST_REVIEW_SCOPE",
                                        help="with --app: the token scope, stack output review_token_scope "
                                        "(api://<client id>/.default)"),
    listed: bool = typer.Option(False, "--list", help="list the items waiting, decide nothing"),
    as_json: bool = typer.Option(False, "--json", help="list the items waiting as JSON (as --list), decide nothing"),
) -> None:
    """Work through the task's review queue: accept the draft, correct it, reject it, or skip.

    Reads and writes the review/, results/ and corrections/ containers of the DataStorage account.

    With --app, only the deployed app's review routes instead, as your Azure sign-in (it needs the Reviewer role)."""
    import getpass

    from shared.cli.review_client import ReviewApi, ReviewApiError, user_credential
    from shared.pipeline.review import ReviewQueue
    from shared.monitoring.stats_sources import interactive_store
    from shared.pipeline.blob_names import DATA_CONNECTION

    if app_url and not scope:
        raise typer.BadParameter("--app needs the stack output review_token_scope", param_hint="--scope")
    cascade = load_cascade()
    spec = find_task(cascade, task)
    try:
        queue = (ReviewApi(app_url, user_credential(), scope) if app_url
                 else ReviewQueue(interactive_store(DATA_CONNECTION), cascade.tasks))
        with working(f"reading the review queue of {spec.name}", shown=not as_json):
            pending = queue.pending(spec.name)
    except KeyError as exc:  # no storage connection configured
        console.print(f"[red]{exc.args[0]}[/]")
        raise typer.Exit(2)
    except ReviewApiError as exc:  # not signed in, no Reviewer role, unreachable
        _exit_in_one_line(str(exc))
    if as_json:
        sys.stdout.write(json.dumps([item.model_dump(mode="json") for item in pending], indent=2,
                                    ensure_ascii=False) + "\n")
        return
    out = Console()
    if listed:
        _list_pending(out, pending)
        return
    who = by or getpass.getuser()
    out.print(f"{len(pending)} item(s) of {spec.name} wait in review")
    decided = 0
    for n, item in enumerate(pending, 1):
        out.rule(f"{n}/{len(pending)}")
        out.print(f"item {_shown(item.record.id)} from {_shown(item.source)}", highlight=False, markup=False)
        if item.text:
            out.print(_shown(item.text, keep="\n\t"), highlight=False, markup=False)
        else:
            out.print("[dim](the input's text was not found)[/]")
        attempts = Table("tier", "outcome", "answer", "confidence")
        for attempt in item.record.attempts:
            attempts.add_row(attempt.tier, attempt.outcome, json.dumps(attempt.answer, ensure_ascii=False),
                             f"{attempt.confidence:.2f}" if attempt.confidence is not None else "-")
        out.print(attempts)
        out.print(f"draft: {json.dumps(item.record.answer, ensure_ascii=False)}", highlight=False, markup=False)
        choice = typer.prompt("[a]ccept / [c]orrect / [r]eject / [s]kip / [q]uit", default="s").strip().lower()[:1]
        if choice == "q":
            break
        if choice not in ("a", "c", "r"):
            continue
        decision = {"a": "accept", "c": "correct", "r": "reject"}[choice]
        answer = _ask_answer(spec, item.record.answer) if decision == "correct" else None
        try:
            who = queue.decide(spec.name, item.record.id, decision, answer, by=who, source=item.source).by
        except ReviewApiError as exc:  # the app refused the reviewer, not this decision: no other would pass
            _exit_in_one_line(str(exc))
        except SmallfirstError as exc:
            console.print(f"[red]not recorded: {exc}[/]")
            continue
        decided += 1
        out.print(f"recorded: {decision}" + (f" -> {json.dumps(answer, ensure_ascii=False)}" if answer else ""))
    out.print(f"{decided} decision(s) recorded by {who}")


def _list_pending(out: Console, pending: list[PendingItem]) -> None:
    """One row per item; names and texts as plain text (Text), never as markup."""
    table = Table("source", "id", "status", "draft", "tier", "confidence", "text",
                  title=f"{len(pending)} item(s) wait in review")
    for item in pending:
        record = item.record
        table.add_row(Text(_shown(item.source)), Text(_shown(record.id)), record.status,
                      Text(_shown(json.dumps(record.answer, ensure_ascii=False))), Text(record.tier or "-"),
                      f"{record.confidence:.2f}" if record.confidence is not None else "-",
                      Text(_shown(item.text[:80]) or "(the input's text was not found)"))
    out.print(table)


def _shown(value: str, keep: str = "") -> str:
    """`value` for a terminal: characters it would act on rather than show (line separators, controls) escaped,
    as a hostile id or text could otherwise break the lines a person reads."""
    return "".join(c if c.isprintable() or c in keep else c.encode("unicode_escape").decode("ascii") for c in value)


def _ask_answer(spec: AnyTask, draft: object) -> object:
    """A label by number or name, or an extraction field by field (Enter keeps the draft's value)."""
    if isinstance(spec, ClassificationTask):
        labels = spec.allowed_labels
        for n, label in enumerate(labels, 1):
            console.print(f"  {n}. {label}")
        while True:
            given = typer.prompt("label (number or name)").strip()
            if given.isdigit() and 1 <= int(given) <= len(labels):
                return labels[int(given) - 1]
            if given in labels:
                return given
            console.print(f"[red]{given!r} is not one of the {len(labels)} labels[/]")
    answer = dict(draft) if isinstance(draft, dict) else {}
    for field, schema in spec.json_schema.get("properties", {}).items():
        given = typer.prompt(f"{field}", default=str(answer.get(field, "")), show_default=True)
        if given != "":  # the schema's numbers are typed in as text
            kind = schema.get("type") if isinstance(schema, dict) else None
            try:
                answer[field] = int(given) if kind == "integer" else float(given) if kind == "number" else given
            except ValueError:
                answer[field] = given  # left for the task's validation to refuse, with its reason
    return answer


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
    from shared.monitoring.smoke import azure_smoke, local_smoke, read_stack_outputs

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
