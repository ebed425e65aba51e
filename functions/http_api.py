"""HTTP endpoints: run a task on items, list the task catalogue, report tier health. Errors are problem+json."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any, Literal

import azure.functions as func
from pydantic import BaseModel, Field, ValidationError

from functions import services
from functions.tracing import traced
from shared.foundation.records import ResultRecord

if TYPE_CHECKING:
    from shared.foundation.principal import ClientPrincipal

bp = func.Blueprint()
log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024
# InputError reasons that are not 422 (a body that is not items at all, or too big to read).
INPUT_ERROR_STATUS = {
    "invalid_json": (400, "Malformed JSON"),
    "invalid_utf8": (400, "Malformed body"),
    "invalid_utf16": (400, "Malformed body"),
    "invalid_utf32": (400, "Malformed body"),
    "too_deeply_nested": (400, "Malformed JSON"),
    "too_large": (413, "Request too large"),
}


def problem(status: int, title: str, detail: str, **extra: Any) -> func.HttpResponse:
    """A problem+json reply. `code` is stable for clients to branch on: the title's words unless given."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "code": extra.pop("code", None) or title.lower().replace(" ", "_"), **extra}
    headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/problem+json",
                             headers=headers)


def oversized_body(req: func.HttpRequest) -> func.HttpResponse | None:
    """A 413 for a body declared over MAX_BODY_BYTES, decided on Content-Length before the body is read. (In Azure
    the Functions host has read it already, up to FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, which infra sets to this cap.)"""
    declared = req.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return problem(413, "Request too large", f"Content-Length {int(declared)} > {MAX_BODY_BYTES} bytes")
    return None


def authorized(req: func.HttpRequest, role: str) -> tuple["ClientPrincipal | None", func.HttpResponse | None]:
    """The request's Entra principal if it holds app role `role`; else the refusal (401: no principal, 403: not the
    role). The header counts only where App Service Authentication sets it, or the local setting says requests
    imitate it (shared/foundation/principal.py cites why); elsewhere (Core Tools) any client could send it."""
    import os

    from shared.errors import InputError
    from shared.foundation.principal import PRINCIPAL_HEADER, decode_principal, principal_header_trusted

    if not principal_header_trusted(os.environ):
        return None, problem(401, "Not authenticated", f"this route needs an Entra token with the {role} app role; "
                             "App Service Authentication is off here, so a client principal header is ignored")
    try:
        principal = decode_principal(req.headers.get(PRINCIPAL_HEADER))
    except InputError as exc:
        return None, problem(401, "Not authenticated", str(exc), code=exc.reason)
    if principal is None or not principal.identity:
        return None, problem(401, "Not authenticated", f"this route needs an Entra token with the {role} app role")
    if role not in principal.roles:
        return None, problem(403, "Forbidden", f"the caller does not hold the {role} app role")
    return principal, None


def over_rate(req: func.HttpRequest, principal: "ClientPrincipal | None") -> func.HttpResponse | None:
    """A 429 when this caller (its principal's object id, else a hash of its function key) has spent its budget."""
    key = req.headers.get("x-functions-key") or req.params.get("code") or ""
    caller = f"oid:{principal.object_id}" if principal else f"key:{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    wait_s = services.rate_limit().take(caller)
    if wait_s:
        return problem(429, "Too many requests", "this caller's request budget is spent for now",
                       retry_after=max(1, round(wait_s)))
    return None


def inference_caller(req: func.HttpRequest) -> func.HttpResponse | None:
    """The inference routes' check beyond the host's function key: with SMALLFIRST_CALLER_AUTH=entra the Caller
    app role as well; then the per-caller limit."""
    from shared.foundation.principal import CALLER_ROLE

    principal = None
    if services.caller_auth() == "entra":
        principal, refused = authorized(req, CALLER_ROLE)
        if refused:
            return refused
    return over_rate(req, principal)


def task_problem(exc: Exception) -> func.HttpResponse:
    """A task that cannot be used: unknown (404), or its file invalid, which the operator must fix (500)."""
    from shared.errors import UnknownTaskError

    if isinstance(exc, UnknownTaskError):
        return problem(404, "Unknown task", str(exc), tasks=exc.known)
    log.error("invalid task file: %s", exc)
    return problem(500, "Invalid task file", "the task's file is invalid; the operator finds why in the logs")


def storage_unavailable(exc: Exception) -> func.HttpResponse:
    """The data account failed (unreachable, throttling, a missing container): the caller may try again. The
    exception's text stays in the log: it names accounts, containers and request ids."""
    log.warning("storage failed: %s", exc)
    return problem(503, "Storage unavailable", "the data account did not answer as expected; try again later")


def ok(body: Any) -> func.HttpResponse:
    """A JSON reply; a pydantic model goes out through its own serializer (for a batch's records a third of the
    time of dumping them to dicts and those to JSON)."""
    text = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body, ensure_ascii=False)
    return func.HttpResponse(text, status_code=200, mimetype="application/json")


class BatchResults(BaseModel):
    """A batch request's reply: a record per item, in the request's order."""

    results: list[ResultRecord]


@bp.function_name("run_task")
@bp.route(route="tasks/{task}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@traced
async def run_task(req: func.HttpRequest) -> func.HttpResponse:
    from shared.errors import InputError, NoTierError, TaskError
    from shared.pipeline.parsing import parse_request

    if refused := oversized_body(req) or inference_caller(req):
        return refused
    answers = services.answers()
    try:
        task = answers.cascade.tasks.get(req.route_params.get("task", ""))
    except TaskError as exc:
        return task_problem(exc)
    raw = req.get_body()
    if len(raw) > MAX_BODY_BYTES:
        return problem(413, "Request too large", f"{len(raw)} bytes > {MAX_BODY_BYTES}")
    try:
        items, batch = parse_request(raw)
    except InputError as exc:
        status, title = INPUT_ERROR_STATUS.get(exc.reason, (422, "Invalid items"))
        return problem(status, title, str(exc), reason=exc.reason)
    if oversized := answers.oversized(task, items):
        if oversized.what == "batch":
            return problem(413, "Batch too large", oversized.detail)
        return problem(413, "Item too large", oversized.detail, items=list(oversized.item_ids))
    try:
        records = await answers.aanswer(task, items)
    except NoTierError as exc:
        return problem(503, "No tier available", str(exc))
    # A request has no blob name: its body's hash tells it apart from other requests reusing the same item ids.
    await answers.ashadow(task, items, records, source=f"http/{hashlib.sha256(raw).hexdigest()[:16]}",
                          send=services.send_shadow)
    return ok(BatchResults(results=records) if batch else records[0])


@bp.function_name("list_tasks")
@bp.route(route="tasks", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@traced
def list_tasks(req: func.HttpRequest) -> func.HttpResponse:
    from shared.errors import TaskError

    if refused := inference_caller(req):
        return refused
    cascade = services.cascade()
    catalogue: list[dict[str, Any]] = []
    try:
        tasks = cascade.tasks.each()
    except TaskError as exc:  # the tasks folder itself is missing
        return task_problem(exc)
    for name, task in tasks:
        if isinstance(task, TaskError):
            catalogue.append({"name": name, "error": str(task)})
            continue
        entry: dict[str, Any] = {"name": task.name, "kind": task.kind, "description": task.description,
                                 "threshold": task.threshold, "threshold_source": task.threshold_source,
                                 "tiers": cascade.tiers.configured(task.tiers)}
        if task.kind == "classification":
            entry["labels"] = [label.model_dump() for label in task.labels]
            entry["none_label"] = task.none_label if task.allow_none else None
        else:
            entry["schema"] = task.json_schema
        catalogue.append(entry)
    return ok({"tasks": catalogue})


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@traced
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Which tiers are configured and reachable, spending no tokens (each tier's `probe`); `?deep=true` has each
    answer a one-line request instead (`health`: an endpoint tier's costs tokens)."""
    if refused := inference_caller(req):
        return refused
    cascade = services.cascade()
    deep = (req.params.get("deep") or "").lower() in ("true", "1")
    tiers: dict[str, Any] = {}
    for name, config in cascade.settings.tiers.items():
        try:
            tier = cascade.tiers.get(name)
            detail = tier.health() if deep else tier.probe()
            tiers[name] = {"backend": config.backend.value, "ok": True, "detail": detail}
        except Exception as exc:  # health reports every failure instead of raising it
            log.warning("tier %s unhealthy: %s", name, exc)
            tiers[name] = {"backend": config.backend.value, "ok": False, "detail": str(exc)}
    healthy = all(t["ok"] for t in tiers.values())
    return func.HttpResponse(json.dumps({"status": "ok" if healthy else "degraded", "check": "deep" if deep else "probe",
                                         "tiers": tiers}),
                             status_code=200 if healthy else 503, mimetype="application/json")


class ReviewDecisionBody(BaseModel):
    """A decision. Who made it comes from the caller's principal: a `by` in the body is ignored (pydantic drops
    unknown fields), so no caller can name someone else in the audit trail."""

    decision: Literal["accept", "correct", "reject"]
    answer: Any = None
    source: str = Field(min_length=1, max_length=1100)  # the input (`<task>/<name>`) the listing gave the item


@bp.function_name("list_review")
# Review routes take no function key: the caller's Entra principal with the Reviewer role is the check
# (`authorized`), so a reviewer needs only `az login` (infra enables App Service Authentication on every stack).
@bp.route(route="review/{task}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@traced
def list_review(req: func.HttpRequest) -> func.HttpResponse:
    from azure.core.exceptions import AzureError

    from shared.errors import TaskError
    from shared.foundation.principal import REVIEWER_ROLE

    principal, refused = authorized(req, REVIEWER_ROLE)
    if refused := refused or over_rate(req, principal):
        return refused
    try:
        items = services.review_queue().pending(req.route_params.get("task", ""))
    except TaskError as exc:
        return task_problem(exc)
    except AzureError as exc:
        return storage_unavailable(exc)
    return ok({"items": [item.model_dump(mode="json") for item in items]})


@bp.function_name("decide_review")
# A catch-all: ids may hold '/', which a route value cannot take encoded (ASP.NET routing keeps %2F as it is)
@bp.route(route="review/{task}/{*id}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@traced
def decide_review(req: func.HttpRequest) -> func.HttpResponse:
    from azure.core.exceptions import AzureError

    from shared.errors import InputError, ReviewItemNotFound, TaskError, WriteConflict
    from shared.foundation.principal import REVIEWER_ROLE

    principal, refused = authorized(req, REVIEWER_ROLE)
    if refused := refused or oversized_body(req) or over_rate(req, principal):
        return refused
    raw = req.get_body()
    if len(raw) > MAX_BODY_BYTES:
        return problem(413, "Request too large", f"{len(raw)} bytes > {MAX_BODY_BYTES}")
    try:
        body = ReviewDecisionBody.model_validate_json(raw)
    except ValidationError as exc:
        return problem(400, "Invalid decision", str(exc.errors()[0]["msg"]), field=list(exc.errors()[0]["loc"]))
    try:
        decided = services.review_queue().decide(req.route_params.get("task", ""), req.route_params.get("id", ""),
                                                 body.decision, body.answer, by=principal.identity,
                                                 source=body.source)
    except TaskError as exc:
        return task_problem(exc)
    except ReviewItemNotFound as exc:
        return problem(404, "Not in review", str(exc))
    except InputError as exc:
        return problem(422, "Invalid decision", str(exc), reason=exc.reason)
    except WriteConflict as exc:
        return problem(409, "Conflict", str(exc))
    except AzureError as exc:
        return storage_unavailable(exc)
    return ok(decided)
