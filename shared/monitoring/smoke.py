"""`smallfirst smoke`: a deployed environment checked end to end, each step timed.

1. upload   a sample to `incoming/<task>/smoke-<uuid><suffix>` in the data account (the user's Azure credential);
2. result   its result in `results/` (named by blob_names), made from the bytes uploaded (its source hash);
3. function key  the app's default function key, read through ARM `listKeys` with the user's credential;
4. health   GET /api/health with that key;
5. classify POST /api/tasks/<task> with the sample's first item.

A step that fails is reported with its reason and the next steps that needed it are skipped; nothing raises. The
local mode (the suite, or a developer) takes a connection string and the local host's URL, and skips the key:
the local host checks none.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal
from urllib.parse import quote

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, HeadersPolicy, RetryPolicy, UserAgentPolicy
from azure.core.rest import HttpRequest, HttpResponse
from azure.storage.blob import BlobServiceClient
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import ConfigError, InputError
from shared.foundation.azure_http import is_loopback, json_object
from shared.pipeline.blob_names import HASH_KEY, Containers, InputBlob
from shared.pipeline.parsing import parse_input

ARM_URL = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"
# Web Apps - List Host Keys, POST .../sites/{name}/host/default/listkeys: the newest stable Microsoft.Web version
# (https://learn.microsoft.com/en-us/rest/api/appservice/web-apps/list-host-keys; Azure/azure-rest-api-specs
# specification/web/resource-manager/Microsoft.Web/AppService/stable/2025-05-01; checked 2026-12-06).
WEB_API_VERSION = "2025-05-01"
USER_AGENT = "smallfirst-smoke"
HTTP_TIMEOUT_S = 120  # a call may start a cold instance and load the tiers

StepStatus = Literal["passed", "failed", "skipped"]


class StepFailed(Exception):
    """A step's check did not hold; the message is the reason shown."""


class StackOutputs(BaseModel):
    """What the smoke test reads of `pulumi stack output --json` (infra/__main__.py exports them)."""

    model_config = ConfigDict(extra="ignore")

    subscription_id: str
    resource_group: str
    function_app_name: str
    function_app_url: str
    data_blob_endpoint: str


def read_stack_outputs(outputs_file: Path | None, infra_dir: Path) -> StackOutputs:
    """From a file of `pulumi stack output --json`, or from running it in `infra_dir`; ConfigError says what is
    missing."""
    if outputs_file is not None:
        text, source = outputs_file.read_text(encoding="utf-8"), str(outputs_file)
    else:
        source = f"`pulumi stack output --json` in {infra_dir}"
        try:
            done = subprocess.run(["pulumi", "stack", "output", "--json"], cwd=infra_dir, capture_output=True,
                                  text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"{source} failed ({exc}); pass --outputs FILE instead") from exc
        if done.returncode != 0:
            raise ConfigError(f"{source} failed: {done.stderr.strip() or done.returncode}")
        text = done.stdout
    try:
        return StackOutputs.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'outputs'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"stack outputs from {source}: {problems}") from exc


class StepResult(BaseModel):
    name: str
    status: StepStatus
    seconds: float
    detail: str


class SmokeReport(BaseModel):
    uploaded: str  # container/name of the sample's copy
    steps: list[StepResult]
    result: dict[str, Any] | None = None  # the result record found for it

    @property
    def failed(self) -> list[str]:
        return [step.name for step in self.steps if step.status == "failed"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def timed(name: str, action: Callable[[], str]) -> StepResult:
    """Run one step: passed with what it found, or failed with why (a smoke test reports every failure; it never
    raises one)."""
    start = time.monotonic()
    try:
        status: StepStatus = "passed"
        detail = action()
    except StepFailed as exc:
        status, detail = "failed", str(exc)
    except Exception as exc:  # an SDK or network error is the step's answer too
        status, detail = "failed", _first_line(exc)
    return StepResult(name=name, status=status, seconds=round(time.monotonic() - start, 3), detail=detail)


def skipped(name: str, why: str) -> StepResult:
    return StepResult(name=name, status="skipped", seconds=0.0, detail=why)


@dataclass
class FunctionKeys:
    """The app's keys through ARM (azure-mgmt-web is not a dependency: one documented POST through azure-core)."""

    outputs: StackOutputs
    credential: TokenCredential
    arm_url: str = ARM_URL

    def default_key(self) -> str:
        o = self.outputs
        path = (f"/subscriptions/{quote(o.subscription_id)}/resourceGroups/{quote(o.resource_group)}"
                f"/providers/Microsoft.Web/sites/{quote(o.function_app_name)}/host/default/listkeys")
        client = PipelineClient(self.arm_url, policies=[
            UserAgentPolicy(USER_AGENT), RetryPolicy(), BearerTokenCredentialPolicy(self.credential, ARM_SCOPE)])
        request = HttpRequest("POST", self.arm_url.rstrip("/") + path, params={"api-version": WEB_API_VERSION})
        # A bearer token goes over plain HTTP only to this machine (a test's ARM); anywhere else azure-core refuses.
        with client:
            response = client.send_request(request, enforce_https=not is_loopback(self.arm_url))
        if response.status_code != 200:
            raise StepFailed(f"ARM listKeys on {o.function_app_name} answered {response.status_code}: "
                             f"{_arm_error(response)}")
        key = (json_object(response.text()).get("functionKeys") or {}).get("default")
        if not key:
            raise StepFailed(f"ARM listKeys on {o.function_app_name} returned no default function key")
        return key



def _arm_error(response: HttpResponse) -> str:
    """ARM's error body ({"error": {"code", "message"}}) in one line, or the start of whatever came back."""
    error = json_object(response.text()).get("error")
    if isinstance(error, dict):
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    return response.text()[:200] or response.reason or ""


class Smoke:
    """The steps against one environment: its data account, its HTTP API, and how to get a function key (None:
    the local host, which checks none)."""

    def __init__(self, blobs: BlobServiceClient, api_url: str, sample: Path, keys: FunctionKeys | None,
                 timeout_s: float = 300.0, poll_s: float = 1.0) -> None:
        self.blobs, self.api_url, self.sample, self.keys = blobs, api_url.rstrip("/"), sample.resolve(), keys
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.data = self.sample.read_bytes()
        items = parse_input(self.sample.name, self.data).items  # an unusable sample is an InputError, at once
        if not items:
            raise InputError("no_items", f"{self.sample}: no item to send")
        self.item = items[0]
        self.input = InputBlob(self.sample.parent.name, f"smoke-{uuid.uuid4()}{sample.suffix}")  # its task's folder
        self.containers = Containers()
        self.result: dict[str, Any] | None = None
        self.key: str | None = None

    def run(self) -> SmokeReport:
        steps = [timed("upload", self.upload)]
        uploaded = steps[-1].status == "passed"
        steps.append(timed("result", self.wait_for_result) if uploaded else skipped("result", "nothing uploaded"))
        if self.keys is None:
            steps.append(skipped("function key", "the local host checks no keys"))
        else:
            steps.append(timed("function key", self.read_key))
        if self.keys is not None and self.key is None:
            steps += [skipped(name, "no function key") for name in ("health", "classify")]
        else:
            steps += [timed("health", self.health), timed("classify", self.classify)]
        return SmokeReport(uploaded=f"{self.containers.incoming}/{self.input.incoming_path}", steps=steps,
                           result=self.result)

    def upload(self) -> str:
        self.blobs.get_blob_client(self.containers.incoming, self.input.incoming_path).upload_blob(self.data)
        return f"{self.sample.name} ({len(self.data)} bytes) for task {self.input.task}"

    def wait_for_result(self) -> str:
        """The result in results/ (one item or several), failing early on a dead letter."""
        wanted = hashlib.sha256(self.data).hexdigest()
        deadline = time.monotonic() + self.timeout_s
        names = (self.input.result_single, self.input.result_lines)
        while True:
            for name in names:
                blob = self.blobs.get_blob_client(self.containers.results, name)
                if blob.exists():
                    downloaded = blob.download_blob()
                    source = (downloaded.properties.metadata or {}).get(HASH_KEY)
                    if source != wanted:
                        raise StepFailed(f"results/{name} was made from other content ({source}), not the upload")
                    text = downloaded.readall().decode("utf-8")
                    self.result = json.loads(text.splitlines()[0] if name.endswith(".jsonl") else text)
                    return (f"results/{name}: {self.result.get('answer')!r} by {self.result.get('tier')} "
                            f"({self.result.get('status')})")
            letter = self.blobs.get_blob_client(self.containers.deadletter, self.input.deadletter)
            if letter.exists():
                reason = json.loads(letter.download_blob().readall()).get("reason")
                raise StepFailed(f"dead-lettered ({reason}): deadletter/{self.input.deadletter}")
            if time.monotonic() >= deadline:
                raise StepFailed(f"no results/{names[0]} within {self.timeout_s:.0f}s (is the blob trigger's "
                                 "Event Grid subscription delivering?)")
            time.sleep(self.poll_s)

    def read_key(self) -> str:
        assert self.keys is not None
        self.key = self.keys.default_key()
        return f"default key of {self.keys.outputs.function_app_name} ({len(self.key)} characters)"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"x-functions-key": self.key} if self.key else {}
        client = PipelineClient(self.api_url, policies=[UserAgentPolicy(USER_AGENT), HeadersPolicy(headers)])
        request = HttpRequest(method, f"{self.api_url}{path}", json=body)
        with client:
            response = client.send_request(request, connection_timeout=30, read_timeout=HTTP_TIMEOUT_S)
        if response.status_code != 200:
            raise StepFailed(f"{method} {path} answered {response.status_code}: {response.text()[:300]}")
        return json_object(response.text())

    def health(self) -> str:
        body = self._call("GET", "/api/health")
        tiers = body.get("tiers") or {}
        return f"{body.get('status')}: " + (", ".join(f"{name} {'ok' if t.get('ok') else 'failing'}"
                                                      for name, t in tiers.items()) or "no tiers")

    def classify(self) -> str:
        record = self._call("POST", f"/api/tasks/{quote(self.input.task)}",
                            {"id": self.input.name, "text": self.item.text})
        if record.get("id") != self.input.name or "answer" not in record:
            raise StepFailed(f"POST /api/tasks/{self.input.task} returned no record for {self.input.name}: "
                             f"{json.dumps(record)[:300]}")
        return f"{record['answer']!r} by {record.get('tier')} ({record.get('status')})"


def azure_smoke(outputs: StackOutputs, sample: Path, timeout_s: float, arm_url: str = ARM_URL) -> Smoke:
    """The deployed environment, with the user's DefaultAzureCredential for the data account and ARM."""
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential()
    return Smoke(BlobServiceClient(outputs.data_blob_endpoint, credential=credential), outputs.function_app_url,
                 sample, FunctionKeys(outputs, credential, arm_url), timeout_s)


def local_smoke(connection_string: str, host_url: str, sample: Path, timeout_s: float) -> Smoke:
    """The local host on Azurite (or any storage by connection string): no ARM, no key."""
    return Smoke(BlobServiceClient.from_connection_string(connection_string), host_url, sample, None, timeout_s)
