"""Typed stack configuration with defaults, so that `pulumi up` needs only a location."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Callable

import pulumi

# The repository root: the code package is built from here (infra/ sits one level below it).
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
# A model in an Azure ML registry, at one version (what an online deployment's `model` takes).
MANAGED_COMPUTE_MODEL_ID = re.compile(r"azureml://registries/[^/]+/models/[^/]+/versions/[^/]+")


class SmallModelHosting(StrEnum):
    # Phi-4 as a GlobalStandard deployment on the AI Services account (pay per token, Entra ID).
    AI_SERVICES = "aiServices"
    # Phi-4 as a hub-based serverless endpoint, for regions where the GlobalStandard deployment is refused.
    SERVERLESS_ENDPOINT = "serverlessEndpoint"


# Model defaults, checked 2026-12-06 against the pages cited in infra/README.md ("Model defaults"). A version left
# out (None) lets the service deploy the model's current default version (ARM DeploymentModel.version: "If version is
# not specified, a default version will be assigned"), so no version number here goes stale.
DEFAULT_SMALL_MODEL = "Phi-4"
# gpt-4o 2024-11-20 retired on 2026-10-01; gpt-5.4-mini is GA until 2027-03-18 and, unlike gpt-5.4, needs no
# registration, so a new subscription can deploy it.
DEFAULT_FRONTIER_MODEL = "gpt-5.4-mini"
DEFAULT_EMBEDDINGS_MODEL = "text-embedding-3-small"
SERVERLESS_PHI4 = "azureml://registries/azureml/models/Phi-4"


@dataclass(frozen=True)
class ModelDeployment:
    """One Cognitive Services deployment: what `pulumi up` asks Azure for, and what the preflight checks."""

    name: str
    format: str
    sku: str
    capacity: int
    version: str | None = None  # None: the service's default version

    def __post_init__(self) -> None:
        if not self.name or not self.format or not self.sku:
            raise ValueError(f"model deployment {self.name or '?'}: name, format and SKU are required")
        if self.capacity < 1:
            raise ValueError(f"model deployment {self.name}: capacity must be at least 1")

    def model_properties(self) -> dict[str, str]:
        """ARM `properties.model`, without `version` unless one was configured."""
        model = {"format": self.format, "name": self.name}
        if self.version:
            model["version"] = self.version
        return model


class CallerAuth(StrEnum):
    # Inference routes take function keys (the default), or an Entra token whose principal has the Caller app role.
    KEY = "key"
    ENTRA = "entra"


@dataclass(frozen=True)
class Retention:
    """Days after its last write that a blob holding item text is deleted, per container (storage.py's lifecycle
    rules). Why each default, and what each container holds: infra/README.md, "Retention"."""

    incoming: int = 30  # a re-run after a fix needs the input; nobody needs it a month later
    results: int = 90  # a quarter for the caller to fetch and reconcile its results
    review: int = 90  # pending decisions: a review backlog older than a quarter is abandoned
    deadletter: int = 30  # raw lines kept only long enough to diagnose and resubmit
    corrections: int = 365  # the retrain's ground truth: a year of decisions, then they age out
    shadow: int = 90  # live accuracy needs recent days only; alerts look at the last few
    claims: int = 14  # must outlive a queue message's 7 days of redeliveries, nothing more

    def __post_init__(self) -> None:
        for container, days in vars(self).items():
            if not 1 <= days <= 3650:
                raise ValueError(f"retention{container.capitalize()}Days: 1-3650 days")
        if self.claims <= 7:
            raise ValueError("retentionClaimsDays: more than 7 (a queue message is redelivered for 7 days)")


def _object_ids(raw: str) -> tuple[str, ...]:
    """Entra object ids from stack config: a YAML list (as JSON text) or comma-separated."""
    items = json.loads(raw) if raw.strip().startswith("[") else raw.split(",")
    ids = tuple(str(item).strip().lower() for item in items if str(item).strip())
    for object_id in ids:
        try:
            uuid.UUID(object_id)
        except ValueError:
            raise ValueError(f"{object_id!r} is not an Entra object id (a GUID)") from None
    return ids
_object_ids.__name__ = "list of Entra object ids"


def _default_small() -> ModelDeployment:
    return ModelDeployment(DEFAULT_SMALL_MODEL, "Microsoft", "GlobalStandard", 1)


def _default_frontier() -> ModelDeployment:
    return ModelDeployment(DEFAULT_FRONTIER_MODEL, "OpenAI", "GlobalStandard", 50)


def _default_embeddings() -> ModelDeployment:
    return ModelDeployment(DEFAULT_EMBEDDINGS_MODEL, "OpenAI", "GlobalStandard", 50)


@dataclass(frozen=True)
class EnvironmentConfig:
    name_prefix: str = "smallfirst"
    small_model_hosting: SmallModelHosting = SmallModelHosting.AI_SERVICES
    small_model: ModelDeployment = field(default_factory=_default_small)
    serverless_model_id: str = SERVERLESS_PHI4
    frontier_model: ModelDeployment = field(default_factory=_default_frontier)
    # GPT-5 models are reasoning models; at reasoning effort `none` (GPT-5.1 and later) they take temperature and
    # logprobs, so the frontier's confidence is its answer's token probability at one request an item. Above `none`
    # set frontierLogprobs false: the tier then scores by sample agreement (k requests, or n per request).
    frontier_reasoning_effort: str = "none"
    frontier_logprobs: bool = True
    enable_managed_compute: bool = False
    # A registry model version (`.../models/Phi-4/versions/N`): ARM takes no label such as `latest` (only the az CLI
    # and SDK resolve labels), so it must be set when managed compute is on; README: how to find N.
    managed_compute_model_id: str = ""
    managed_compute_instance_type: str = "Standard_NC24ads_A100_v4"
    managed_compute_instance_count: int = 1
    # A Phi-4 completion of a few hundred tokens under load takes tens of seconds; Azure's default is 5 s.
    managed_compute_request_timeout_s: int = 120
    # The inference server batches concurrent requests on the GPU; Azure's default of 1 would queue them all.
    managed_compute_max_concurrent_requests: int = 16
    # The trained tier's managed embedder (smallfirst_infra/embeddings.py); off: it embeds locally with MiniLM.
    embeddings_deployment: bool = False
    embeddings_model: ModelDeployment = field(default_factory=_default_embeddings)
    # Scheduled retraining of the trained tier (functions/retrain.py): NCRONTAB schedule, and the tasks (none: off).
    retrain_schedule: str = "0 0 3 * * *"
    retrain_tasks: str = ""
    # Share of accepted items the frontier also answers off the request path, for live accuracy (shadow sampling).
    shadow_fraction: str = "0.02"
    # Alerts (alerts.py): where they go, and what fires them.
    alert_email: str = ""
    failure_rate_threshold: float = 0.05
    accuracy_target: float = 0.95
    maximum_instance_count: int = 100
    instance_memory_mb: int = 2048
    python_version: str = "3.11"
    app_source_dir: Path = REPOSITORY_ROOT
    # Entra ID (entra.py): who may decide reviews (users or groups), and who may call inference with a token.
    caller_auth: CallerAuth = CallerAuth.KEY
    reviewers: tuple[str, ...] = ()
    callers: tuple[str, ...] = ()
    # A VNet, private endpoints and no public data planes (network.py); off: as public as before, Entra-only.
    private_networking: bool = False
    retention: Retention = field(default_factory=Retention)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]{2,10}", self.name_prefix):
            raise ValueError("namePrefix: 3-11 lowercase letters or digits, starting with a letter")
        if self.instance_memory_mb not in (512, 2048, 4096):
            raise ValueError("instanceMemoryMb: 512, 2048 or 4096")
        # Azure caps a managed online endpoint's request timeout at 180 s.
        if not 90 <= self.managed_compute_request_timeout_s <= 180:
            raise ValueError("managedComputeRequestTimeoutSeconds: 90-180")
        if not 1 <= self.managed_compute_max_concurrent_requests <= 256:
            raise ValueError("managedComputeMaxConcurrentRequests: 1-256")
        if self.enable_managed_compute and not MANAGED_COMPUTE_MODEL_ID.fullmatch(self.managed_compute_model_id):
            raise ValueError(
                "managedComputeModelId: a registry model version such as "
                "azureml://registries/azureml/models/Phi-4/versions/<N> (ARM resolves no `latest` label); find N with "
                "`az ml model show --registry-name azureml --name Phi-4 --label latest --query version`")

    def deployments(self) -> dict[str, ModelDeployment]:
        """The Cognitive Services deployments this config creates, by role (what the preflight checks)."""
        found = {"frontier": self.frontier_model}
        if self.small_model_hosting == SmallModelHosting.AI_SERVICES:
            found = {"small": self.small_model, **found}
        if self.embeddings_deployment:
            found["embeddings"] = self.embeddings_model
        return found

    @classmethod
    def from_pulumi(cls, config: pulumi.Config) -> "EnvironmentConfig":
        return cls.from_lookup(config.get)

    @classmethod
    def from_stack_file(cls, path: Path, namespace: str = "smallfirst") -> "EnvironmentConfig":
        """Reads `Pulumi.<stack>.yaml` as `pulumi up` would (plain values; secrets are not needed here)."""
        import yaml

        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"{path}: cannot read stack config: {error}") from error
        values = document.get("config") if isinstance(document, dict) else None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: no `config:` map, as a Pulumi stack file has")
        prefix = f"{namespace}:"
        plain = {key.removeprefix(prefix): _as_text(value) for key, value in values.items()
                 if isinstance(key, str) and key.startswith(prefix)}
        return cls.from_lookup(plain.get)

    @classmethod
    def from_lookup(cls, lookup: Callable[[str], str | None]) -> "EnvironmentConfig":
        """One parser for stack config however it is read: `lookup(key)` gives the raw text or None."""
        defaults = cls()

        def text(key: str, default: str) -> str:
            return lookup(key) or default

        def optional(key: str, default: str | None) -> str | None:
            return lookup(key) or default

        def parsed(key: str, default, parse):
            raw = lookup(key)
            if raw is None or raw == "":
                return default
            try:
                return parse(raw)
            except ValueError:
                raise ValueError(f"{key}: {raw!r} is not a {parse.__name__}") from None

        def flag(raw: str) -> bool:
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        flag.__name__ = "boolean (true or false)"

        def deployment(prefix: str, default: ModelDeployment) -> ModelDeployment:
            return ModelDeployment(
                name=text(f"{prefix}Name", default.name), format=text(f"{prefix}Format", default.format),
                sku=text(f"{prefix}Sku", default.sku), capacity=parsed(f"{prefix}Capacity", default.capacity, int),
                version=optional(f"{prefix}Version", default.version))

        def retention() -> Retention:
            return Retention(**{
                container: parsed(f"retention{container.capitalize()}Days", days, int)
                for container, days in vars(defaults.retention).items()})

        caller_auth = text("callerAuth", defaults.caller_auth)
        if caller_auth not in set(CallerAuth):
            raise ValueError(f"callerAuth: one of {', '.join(CallerAuth)}")
        hosting = text("smallModelHosting", defaults.small_model_hosting)
        if hosting not in set(SmallModelHosting):
            raise ValueError(f"smallModelHosting: one of {', '.join(SmallModelHosting)}")
        return cls(
            name_prefix=text("namePrefix", defaults.name_prefix),
            small_model_hosting=SmallModelHosting(hosting),
            small_model=deployment("smallModel", defaults.small_model),
            serverless_model_id=text("serverlessModelId", defaults.serverless_model_id),
            frontier_model=deployment("frontierModel", defaults.frontier_model),
            frontier_reasoning_effort=text("frontierReasoningEffort", defaults.frontier_reasoning_effort),
            frontier_logprobs=parsed("frontierLogprobs", defaults.frontier_logprobs, flag),
            enable_managed_compute=parsed("enableManagedCompute", defaults.enable_managed_compute, flag),
            managed_compute_model_id=text("managedComputeModelId", defaults.managed_compute_model_id),
            managed_compute_instance_type=text("managedComputeInstanceType", defaults.managed_compute_instance_type),
            managed_compute_instance_count=parsed("managedComputeInstanceCount",
                                                  defaults.managed_compute_instance_count, int),
            managed_compute_request_timeout_s=parsed("managedComputeRequestTimeoutSeconds",
                                                     defaults.managed_compute_request_timeout_s, int),
            managed_compute_max_concurrent_requests=parsed("managedComputeMaxConcurrentRequests",
                                                           defaults.managed_compute_max_concurrent_requests, int),
            embeddings_deployment=parsed("embeddingsDeployment", defaults.embeddings_deployment, flag),
            embeddings_model=deployment("embeddingsModel", defaults.embeddings_model),
            retrain_schedule=text("retrainSchedule", defaults.retrain_schedule),
            retrain_tasks=text("retrainTasks", defaults.retrain_tasks),
            shadow_fraction=text("shadowFraction", defaults.shadow_fraction),
            alert_email=text("alertEmail", defaults.alert_email),
            failure_rate_threshold=parsed("failureRateThreshold", defaults.failure_rate_threshold, float),
            accuracy_target=parsed("accuracyTarget", defaults.accuracy_target, float),
            maximum_instance_count=parsed("maximumInstanceCount", defaults.maximum_instance_count, int),
            instance_memory_mb=parsed("instanceMemoryMb", defaults.instance_memory_mb, int),
            caller_auth=CallerAuth(caller_auth),
            reviewers=parsed("reviewers", defaults.reviewers, _object_ids),
            callers=parsed("callers", defaults.callers, _object_ids),
            private_networking=parsed("privateNetworking", defaults.private_networking, flag),
            retention=retention(),
        )


def _as_text(value: object) -> str | None:
    """A YAML scalar as `pulumi config get` prints it (booleans lower-case); secrets and maps are not read."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list):
        return json.dumps(value)
    return None
