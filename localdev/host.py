"""A local Functions host for machines without Core Tools.

It loads `function_app.app` and calls its functions as registered: HTTP triggers by route on
http://localhost:7071/api/...; blob triggers for each new blob under their path in the storage
connection (Azurite emits no Event Grid events, so the host lists the container) and for Event Grid
deliveries to the blob extension's webhook, as Core Tools serves it
(POST /runtime/webhooks/blobs?functionName=Host.Functions.<name>, with the subscription-validation
handshake); and queue triggers by polling, taking only as many messages as it has free workers, keeping
their visibility extended while they run, with the runtime's poison-queue rule (after `max_dequeue_count`
failures a message moves to `<queue>-poison`). Idle polling backs off as the runtime's queue listener does:
the wait doubles from `poll_s` up to host.json's `maxPollingInterval` while nothing is found, and is short
again once something is (or an invocation ends: it may have queued work). A failed blob invocation is
tried again on later polls, up to `max_dequeue_count` times. Values from local.settings.json (and a .env beside
it) are applied to the environment first where it has none of its own, as Core Tools does, by the loader the
command line uses (shared/cli/local_settings.py).

At start it creates every blob container and queue the app uses (`app_storage`), so a fresh Azurite is enough;
`--create-storage` does only that and exits, for `func start`, which creates none of them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import inspect
import json
import logging
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlparse

from localdev.azurite import PortInUseError, ensure_port_free
from shared.cli.local_settings import load_local_settings
from shared.errors import ConfigError

log = logging.getLogger("smallfirst.localhost")
REPO = Path(__file__).resolve().parents[1]


class WorkerLoop:
    """The worker's event loop. The Python worker runs every async function on its one event loop (sync ones
    on threads), so what an async handler creates bound to a loop (async SDK clients) is reused by the next
    invocation, as in Azure. Started on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        result = fn(**kwargs)
        if not inspect.isawaitable(result):
            return result
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="worker-loop")
                self._thread.start()
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(result, loop).result()

    def stop(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join()
            loop.close()


@dataclass
class HttpRoute:
    name: str
    pattern: re.Pattern[str]
    methods: set[str]
    arg: str
    fn: Callable[..., Any]


def route_pattern(template: str) -> re.Pattern[str]:
    """'tasks/{task}' -> ^/api/tasks/(?P<task>[^/]+)$; a catch-all '{*rest}' takes the rest of the path, '/' too."""
    regex = re.sub(r"\{\*{1,2}(\w+)\}", r"(?P<\1>.+)", template.strip("/"))
    regex = re.sub(r"\{(\w+)(?::[^}]*)?\}", r"(?P<\1>[^/]+)", regex)
    return re.compile(rf"^/api/{regex}/?$")


def _message_text(content: str) -> str | None:
    """A queue message's text, as the trigger decodes it (base64 of UTF-8); None if it is not that."""
    try:
        return base64.b64decode(content, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError
        return None


def route_values(match: re.Match[str]) -> dict[str, str]:
    """Route parameters percent-decoded, as ASP.NET Core routing gives them to Azure Functions: all but an
    encoded '/', which stays %2F."""
    return {key: unquote(re.sub("%2[Ff]", "%252F", value)) for key, value in match.groupdict().items()}


@functools.cache
def indexed_functions(app) -> list:
    """The app's functions. The worker indexes an app once, and `get_functions` refuses a second call on the
    same app (it records every name to reject duplicates), so hosts in one process share this list."""
    return app.get_functions()


@dataclass
class StorageNeeds:
    """The blob containers and queues the app uses in one storage connection."""

    containers: set[str] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)


def app_storage(app) -> dict[str, StorageNeeds]:
    """By connection setting: the container or queue of each blob and queue trigger or binding of the app, and
    in the data connection every container of shared/pipeline/blob_names.py (the functions write to those
    through the SDK, not through bindings, so no binding names them)."""
    from shared.pipeline.blob_names import DATA_CONNECTION, Containers

    needs: dict[str, StorageNeeds] = {}
    for function in indexed_functions(app):
        for binding in function.get_bindings():
            spec = binding.get_dict_repr()
            if spec["type"] in ("blobTrigger", "blob"):
                needs.setdefault(spec["connection"], StorageNeeds()).containers.add(spec["path"].split("/", 1)[0])
            elif spec["type"] in ("queueTrigger", "queue"):
                needs.setdefault(spec["connection"], StorageNeeds()).queues.add(spec["queueName"])
    if DATA_CONNECTION in needs:
        needs[DATA_CONNECTION].containers.update(Containers().all())
    return needs


def ensure_app_storage(app) -> dict[str, StorageNeeds]:
    """Create what `app_storage` names unless it exists (each call is idempotent); returns it."""
    from shared.foundation.storage_connections import blob_service, queue_service
    from shared.pipeline.storage import BlobStore, ensure_queue

    needs = app_storage(app)
    for connection, need in needs.items():
        if need.containers:
            BlobStore(blob_service(connection)).ensure_containers(sorted(need.containers))
        if need.queues:
            service = queue_service(connection)
            for queue in sorted(need.queues):
                ensure_queue(service.get_queue_client(queue))
    return needs


class LocalHTTPServer(ThreadingHTTPServer):
    """A thread per connection, with a backlog for many concurrent clients (the default of 5 drops some)."""

    daemon_threads = True
    request_queue_size = 128


WORKERS = 4
# The app's own body cap, which infra gives the Functions host as FUNCTIONS_REQUEST_BODY_SIZE_LIMIT.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DRAIN_CAPS = 4  # a refused body of up to this many caps is taken in unread (see _discard_body)
DRAIN_TIMEOUT_S = 5.0
VISIBILITY_S = 30  # a received message stays hidden this long, renewed every third of it while it runs
WEBHOOK_PATH = "/runtime/webhooks/blobs"


def max_polling_interval_s(host_json: Path = REPO / "host.json") -> float:
    """host.json's `extensions.queues.maxPollingInterval` (a "[d.]hh:mm:ss" timespan) in seconds; the runtime's
    default is one minute."""
    value = json.loads(host_json.read_text()).get("extensions", {}).get("queues", {}).get("maxPollingInterval")
    if value is None:
        return 60.0
    hours, minutes, seconds = str(value).split(":")
    days, _, hours = hours.rpartition(".")  # "d.hh:mm:ss" counts days too
    return 86400 * float(days or 0) + 3600 * float(hours) + 60 * float(minutes) + float(seconds)


class LocalHost:
    def __init__(self, app, port: int = 7071, poll_s: float = 0.5, max_dequeue_count: int = 5,
                 poll_blobs: bool = True, max_poll_s: float = 2.0, poll_queues: bool = True,
                 max_body_bytes: int | None = None) -> None:
        self.app = app
        # Refused on Content-Length before reading, as the Functions host does above its limit.
        self.max_body_bytes = max_body_bytes or int(os.environ.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT",
                                                                   DEFAULT_MAX_BODY_BYTES))
        self.port = port
        self.poll_s = poll_s
        self.max_poll_s = max(poll_s, max_poll_s)  # the longest idle wait between polls
        self.max_dequeue_count = max_dequeue_count
        self.poll_blobs = poll_blobs  # off: blobs arrive only as Event Grid deliveries to the webhook
        # Off: no queue message is received. In Azure the Functions host polls queues from its own process; here
        # each poll is storage SDK calls in the functions' process, taking the GIL from a running batch.
        self.poll_queues = poll_queues
        self.routes: list[HttpRoute] = []
        self.blob_functions: list[tuple[str, dict[str, Any], Callable[..., Any]]] = []
        self.queue_functions: list[tuple[str, dict[str, Any], Callable[..., Any]]] = []
        for function in indexed_functions(app):
            trigger = function.get_trigger()
            spec = trigger.get_dict_repr()
            fn = function.get_user_function()
            name = function.get_function_name()
            if spec["type"] == "httpTrigger":
                methods = {str(getattr(m, "value", m)).upper() for m in (spec.get("methods") or ["GET", "POST"])}
                self.routes.append(HttpRoute(name, route_pattern(spec.get("route") or name), methods, spec["name"], fn))
            elif spec["type"] == "blobTrigger":
                self.blob_functions.append((name, spec, fn))
            elif spec["type"] == "queueTrigger":
                self.queue_functions.append((name, spec, fn))
            else:
                log.warning("function %s: trigger %s is not served locally", name, spec["type"])
        self._stop = threading.Event()
        self._wake = threading.Event()  # set when an invocation ends, or on stop: poll now
        self.polls = 0  # polls done (tests watch the back-off)
        self._seen_blobs: dict[str, str] = {}
        self._blob_failures: dict[str, int] = {}
        self._queues: dict[tuple[str, str], Any] = {}
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="invoke")
        self.finished_invocations = 0  # blob function calls that returned or raised (tests wait on it)
        self._lock = threading.Lock()
        self._in_flight: dict[str, tuple[Any, Any]] = {}  # message id -> (queue client, latest message)
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.worker_loop = WorkerLoop()

    # -- HTTP -------------------------------------------------------------------------------------------
    def handle_http(self, method: str, raw_url: str, headers: dict[str, str], body: bytes):
        import azure.functions as func

        # X-MS-CLIENT-PRINCIPAL passes as Core Tools passes it: the app believes it only behind
        # SMALLFIRST_LOCAL_PRINCIPAL_HEADER=trust (shared/foundation/principal.py), which tests set to imitate Azure.
        url = urlparse(raw_url)
        if url.path == WEBHOOK_PATH and method == "POST":
            return self.handle_event_grid(dict(parse_qsl(url.query)), headers, body)
        for route in self.routes:
            match = route.pattern.match(url.path)
            if match and method in route.methods:
                request = func.HttpRequest(method=method, url=f"http://localhost:{self.port}{raw_url}", headers=headers,
                                           params=dict(parse_qsl(url.query)), route_params=route_values(match),
                                           body=body)
                try:
                    return self.worker_loop.call(route.fn, **{route.arg: request})
                finally:
                    self._wake.set()
        return func.HttpResponse(json.dumps({"type": "about:blank", "title": "Not Found", "status": 404,
                                             "detail": f"no function serves {method} {url.path}"}),
                                 status_code=404, mimetype="application/problem+json")

    def handle_event_grid(self, query: dict[str, str], headers: dict[str, str], body: bytes):
        """The blob extension's webhook: the validation handshake, then BlobCreated events to the function."""
        import azure.functions as func

        name = query.get("functionName", "").removeprefix("Host.Functions.")
        function = next(((spec, fn) for fn_name, spec, fn in self.blob_functions if fn_name == name), None)
        try:
            events = json.loads(body or b"[]")
            events = events if isinstance(events, list) else [events]
            if {k.lower(): v for k, v in headers.items()}.get("aeg-event-type") == "SubscriptionValidation":
                code = events[0]["data"]["validationCode"]
                return func.HttpResponse(json.dumps({"validationResponse": code}), status_code=200,
                                         mimetype="application/json")
            if function is None:
                return func.HttpResponse(f"no blob function {name!r}", status_code=404)
            spec, fn = function
            container = spec["path"].split("/", 1)[0]
            blobs = [self._blob_of(event, container) for event in events
                     if event.get("eventType") == "Microsoft.Storage.BlobCreated"]
        except (ValueError, LookupError, TypeError, AttributeError) as exc:  # not Event Grid's schema
            return func.HttpResponse(json.dumps({"type": "about:blank", "title": "Bad Request", "status": 400,
                                                 "detail": f"not Event Grid events: {type(exc).__name__}: {exc}"}),
                                     status_code=400, mimetype="application/problem+json")
        for blob in blobs:
            self._pool.submit(self._safe, name, self.invoke_blob, spec, fn, container, blob)
        return func.HttpResponse(status_code=202)

    @staticmethod
    def _blob_of(event: dict[str, Any], container: str) -> str:
        """The blob's name in `container` from a BlobCreated event's URL (ValueError for another container's)."""
        segments = urlparse(event["data"]["url"]).path.lstrip("/").split("/")
        at = segments.index(container)  # after the account name in Azurite's path-style URLs
        if at + 1 >= len(segments):
            raise ValueError(f"no blob named in {event['data']['url']}")
        return unquote("/".join(segments[at + 1:]))

    def _http_server(self) -> ThreadingHTTPServer:
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

            def _serve(self) -> None:
                length = self.headers.get("content-length") or "0"
                if refusal := self._refusal(length):  # decided on the headers alone: the body is never read
                    self.close_connection = True  # the body's end is unknown or unread: nothing more can be read
                    status, content_type, extra = refusal[0], "application/problem+json", {}
                    payload = json.dumps({"type": "about:blank", "title": refusal[1], "status": refusal[0],
                                          "detail": refusal[2], "code": refusal[3]}).encode()
                else:
                    status, payload, content_type, extra = self._respond(self.rfile.read(int(length)))
                self.send_response(status)
                self.send_header("content-type", content_type)
                if self.close_connection:
                    self.send_header("connection", "close")
                self.send_header("content-length", str(len(payload)))
                for key, value in extra.items():
                    if key.lower() not in {"content-type", "content-length"}:
                        self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":  # a HEAD reply has the headers of the body it does not send
                    self.wfile.write(payload)
                if refusal and length.isdigit():
                    self._discard_body(int(length))

            def _discard_body(self, length: int) -> None:
                """After a refusal, take in a body of up to a few caps unread, so a client that sends all of it before
                reading the reply (urllib, most clients) gets the reply instead of a broken pipe; a larger one is
                cut off with the connection."""
                if length > DRAIN_CAPS * host.max_body_bytes:
                    return
                self.connection.settimeout(DRAIN_TIMEOUT_S)  # a client that promised more than it sends
                try:
                    while length > 0 and (chunk := self.rfile.read(min(length, 1 << 16))):
                        length -= len(chunk)
                except OSError:
                    pass

            def _refusal(self, length: str) -> tuple[int, str, str, str] | None:
                """What a server in front of the app refuses: a Content-Length that is not a length or is over
                the cap; a Host other than this host's own name (DNS rebinding); a POST or other write from
                another origin (a web page the developer visits). Status, title, detail, code."""
                if not (length.isdigit() and len(length) < 12):
                    return 400, "Bad Request", f"Content-Length {length[:40]!r} is not a length", "invalid_length"
                own = {f"localhost:{host.port}", f"127.0.0.1:{host.port}"}
                if (self.headers.get("host") or "").lower() not in own:
                    return (400, "Bad Request", f"Host must be one of {', '.join(sorted(own))}", "invalid_host")
                origin = self.headers.get("origin")
                if origin is not None and self.command not in ("GET", "HEAD") and origin.lower() not in {
                        f"http://{name}" for name in own}:
                    return 403, "Forbidden", "cross-origin requests are refused", "cross_origin"
                if int(length) > host.max_body_bytes:
                    return (413, "Request too large", f"Content-Length {int(length)} > {host.max_body_bytes} bytes",
                            "too_large")
                return None

            def _respond(self, body: bytes) -> tuple[int, bytes, str, dict[str, str]]:
                try:
                    response = host.handle_http(self.command, self.path, dict(self.headers.items()), body)
                    return (response.status_code, response.get_body(), response.mimetype or "text/plain",
                            dict(response.headers.items()))
                except Exception:  # an unhandled function error is a 500, as in Azure
                    log.exception("function failed on %s %s", self.command, self.path)
                    return 500, b"", "text/plain", {}

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug(fmt, *args)

        return LocalHTTPServer(("127.0.0.1", self.port), Handler)

    # -- blobs --------------------------------------------------------------------------------------------
    def invoke_blob(self, spec: dict[str, Any], fn: Callable[..., Any], container: str, blob_name: str) -> None:
        """Bind the blob as the worker does: a model_binding_data Datum through the extension's converter."""
        from azurefunctions.extensions.base import Datum
        from azurefunctions.extensions.bindings.blob import BlobClient
        from azurefunctions.extensions.bindings.blob.blobClientConverter import BlobClientConverter

        class _ModelBindingData:
            version, source, content_type = "1.0", "AzureStorageBlobs", "application/json"
            content = json.dumps({"Connection": spec["connection"], "ContainerName": container, "BlobName": blob_name})

        client = BlobClientConverter.decode(Datum(_ModelBindingData(), "model_binding_data"), trigger_metadata={},
                                            pytype=BlobClient)
        self.worker_loop.call(fn, **{spec["name"]: client})

    def poll_blobs_once(self) -> list[str]:
        """Invoke blob functions for blobs not seen (or changed) since the last poll; returns their names."""
        from shared.foundation.storage_connections import blob_service

        invoked = []
        for name, spec, fn in self.blob_functions:
            container, _, prefix = spec["path"].partition("/")
            prefix = prefix.split("{", 1)[0]
            service = blob_service(spec["connection"])
            try:
                blobs = list(service.get_container_client(container).list_blobs(name_starts_with=prefix))
            except Exception as exc:  # container missing, or storage not up yet: try again next poll
                log.debug("listing %s failed: %s", container, exc)
                continue
            for blob in blobs:
                key = f"{name}:{container}/{blob.name}"
                if self._seen_blobs.get(key) == blob.etag:
                    continue
                self._seen_blobs[key] = blob.etag
                invoked.append(blob.name)
                self._pool.submit(self._safe, name, self.invoke_blob, spec, fn, container, blob.name, retry_key=key)
        return invoked

    # -- queues ---------------------------------------------------------------------------------------------
    def _queue(self, connection: str, name: str):
        """The queue's client, created (and the queue with it) once per host, not on every poll. It sends base64
        text, as the trigger expects, and receives messages as stored: one that is not base64 text is the
        host's to settle (`_message_text`), not an error of the whole poll."""
        from azure.storage.queue import TextBase64EncodePolicy

        from shared.foundation.storage_connections import queue_service
        from shared.pipeline.storage import ensure_queue

        key = (connection, name)
        if key not in self._queues:
            client = queue_service(connection).get_queue_client(name, message_encode_policy=TextBase64EncodePolicy())
            self._queues[key] = ensure_queue(client)
        return self._queues[key]

    def poll_queues_once(self) -> int:
        """Receive as many messages as there are free workers, and start them."""
        handled = 0
        for name, spec, fn in self.queue_functions:
            with self._lock:
                free = WORKERS - len(self._in_flight)
            if free <= 0:
                break
            queue = self._queue(spec["connection"], spec["queueName"])
            for message in queue.receive_messages(max_messages=min(free, 32), visibility_timeout=VISIBILITY_S):
                handled += 1
                text = _message_text(message.content)
                if text is None:  # no try could decode it: to the poison queue at once, as the runtime does
                    log.error("message %s of %s is not base64 text: moved to the poison queue", message.id, name)
                    self._settle(name, spec, queue, message, failed=True, retry=False)
                    continue
                message.content = text
                with self._lock:
                    self._in_flight[message.id] = (queue, message)
                self._pool.submit(self._run_queue_message, name, spec, fn, queue, message)
        return handled

    def extend_visibility(self) -> None:
        """Keep running messages hidden, so no second copy of the same work starts meanwhile. Under the lock:
        a message is never renewed and settled at once, so the pop receipt each uses is the current one."""
        with self._lock:
            for message_id, (queue, message) in self._in_flight.items():
                try:
                    renewed = queue.update_message(message, visibility_timeout=VISIBILITY_S)
                except Exception as exc:  # if it is not renewed, it can become visible again: its claim still holds
                    log.warning("extending visibility of message %s failed: %s", message_id, exc)
                    continue
                message.pop_receipt = renewed.pop_receipt
                message.next_visible_on = renewed.next_visible_on

    def _run_queue_message(self, name, spec, fn, queue, message) -> None:
        import azure.functions as func

        try:
            self.worker_loop.call(fn, **{spec["name"]: func.QueueMessage(id=message.id, body=message.content.encode("utf-8"),
                                                        pop_receipt=message.pop_receipt)})
            failed = False
        except Exception:
            log.exception("function %s failed on message %s (attempt %d)", name, message.id, message.dequeue_count)
            failed = True
        self._settle(name, spec, queue, message, failed)
        self._wake.set()

    def _settle(self, name, spec, queue, message, failed: bool, retry: bool = True) -> None:
        with self._lock:  # no renewal may change the pop receipt while we settle the message
            self._in_flight.pop(message.id, None)
            try:
                if failed and retry and message.dequeue_count < self.max_dequeue_count:
                    queue.update_message(message, visibility_timeout=1)  # visible again soon, like the runtime's retry
                    return
                if failed:
                    self._queue(spec["connection"], f"{spec['queueName']}-poison").send_message(message.content)
                queue.delete_message(message)
            except Exception as exc:
                log.error("settling message %s of %s failed: %s", message.id, name, exc)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def _safe(self, name: str, fn: Callable[..., Any], *args: Any, retry_key: str | None = None) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("function %s failed", name)
            if retry_key is not None:  # seen no more: the next poll invokes it again, up to the poison threshold
                with self._lock:
                    failures = self._blob_failures[retry_key] = self._blob_failures.get(retry_key, 0) + 1
                    if failures < self.max_dequeue_count:
                        self._seen_blobs.pop(retry_key, None)
                    else:
                        log.error("function %s failed %d times on %s; not tried again", name, failures, retry_key)
        finally:
            with self._lock:
                self.finished_invocations += 1
            self._wake.set()

    def _poll_loop(self) -> None:
        last_renewal = time.monotonic()
        wait = self.poll_s
        while not self._stop.is_set():
            found = 0
            try:
                if self.poll_blobs:
                    found += len(self.poll_blobs_once())
                if self.poll_queues:
                    found += self.poll_queues_once()
                if time.monotonic() - last_renewal > VISIBILITY_S / 3:
                    self.extend_visibility()
                    last_renewal = time.monotonic()
            except Exception:
                log.exception("poll failed")
            self.polls += 1
            # Each idle poll is storage calls and CPU taken from the functions themselves: back off while idle.
            wait = self.poll_s if found else min(2 * wait, self.max_poll_s)
            if self._wake.wait(wait):
                self._wake.clear()
                wait = self.poll_s

    def start(self) -> "LocalHost":
        ensure_app_storage(self.app)  # before serving: a blob uploaded next must find its container
        self._server = self._http_server()
        self.port = self._server.server_address[1]
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True, name="http"),
                         threading.Thread(target=self._poll_loop, daemon=True, name="poll")]
        for thread in self._threads:
            thread.start()
        log.info("serving %d HTTP, %d blob and %d queue functions on http://127.0.0.1:%d/api/",
                 len(self.routes), len(self.blob_functions), len(self.queue_functions), self.port)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.worker_loop.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--settings", type=Path, default=REPO / "local.settings.json")
    parser.add_argument("--create-storage", action="store_true",
                        help="create the containers and queues the app uses, then exit (before `func start`)")
    args = parser.parse_args()
    if not args.create_storage:
        try:  # before anything slow: a busy port is the usual mistake (another host, or `func start`)
            ensure_port_free(args.port, "the local Functions host", "--port")
        except PortInUseError as exc:
            sys.exit(f"smallfirst-host: {exc}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs log every request at INFO
    try:
        load_local_settings(args.settings)
    except ConfigError as exc:  # a local.settings.json that is not JSON
        sys.exit(f"smallfirst-host: {exc}")
    sys.path.insert(0, str(REPO))
    from azure.core.exceptions import AzureError
    from function_app import app

    from functions.services import max_dequeue_count

    try:
        if args.create_storage:
            for connection, need in ensure_app_storage(app).items():
                print(f"{connection}: containers {', '.join(sorted(need.containers)) or '-'}; "
                      f"queues {', '.join(sorted(need.queues)) or '-'}")
            return
        host = LocalHost(app, port=args.port, max_dequeue_count=max_dequeue_count(),
                         max_poll_s=max_polling_interval_s()).start()
    except (KeyError, AzureError) as exc:  # no connection setting, or its storage unreachable (Azurite not up)
        detail = exc.args[0] if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        sys.exit(f"smallfirst-host: cannot create the app's containers and queues: {detail}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        host.stop()


if __name__ == "__main__":
    main()
