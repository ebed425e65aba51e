"""Typed stack configuration with defaults, so that `pulumi up` needs only a location."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pulumi

# The repository root: the code package is built from here (infra/ sits one level below it).
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


class SmallModelHosting(StrEnum):
    # Phi-4 as a GlobalStandard deployment on the AI Services account (pay per token, Entra ID).
    AI_SERVICES = "aiServices"
    # Phi-4 as a hub-based serverless endpoint, for regions where the GlobalStandard deployment is refused.
    SERVERLESS_ENDPOINT = "serverlessEndpoint"


@dataclass(frozen=True)
class EnvironmentConfig:
    name_prefix: str = "smallfirst"
    small_model_hosting: SmallModelHosting = SmallModelHosting.AI_SERVICES
    small_model_name: str = "Phi-4"
    small_model_version: str = "7"
    small_model_sku: str = "GlobalStandard"
    small_model_capacity: int = 1
    serverless_model_id: str = "azureml://registries/azureml/models/Phi-4"
    frontier_model_name: str = "gpt-4o"
    frontier_model_version: str = "2024-11-20"
    frontier_sku: str = "GlobalStandard"
    frontier_capacity: int = 50
    enable_managed_compute: bool = False
    managed_compute_model_id: str = "azureml://registries/azureml/models/Phi-4/versions/7"
    managed_compute_instance_type: str = "Standard_NC24ads_A100_v4"
    managed_compute_instance_count: int = 1
    # A Phi-4 completion of a few hundred tokens under load takes tens of seconds; Azure's default is 5 s.
    managed_compute_request_timeout_s: int = 120
    # The inference server batches concurrent requests on the GPU; Azure's default of 1 would queue them all.
    managed_compute_max_concurrent_requests: int = 16
    # The trained tier's managed embedder (smallfirst_infra/embeddings.py); off: it embeds locally with MiniLM.
    embeddings_deployment: bool = False
    embeddings_model_name: str = "text-embedding-3-small"
    embeddings_model_version: str = "1"
    embeddings_sku: str = "GlobalStandard"
    embeddings_capacity: int = 50
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

    @classmethod
    def from_pulumi(cls, config: pulumi.Config) -> "EnvironmentConfig":
        defaults = cls()

        def text(key: str, default: str) -> str:
            return config.get(key) or default

        def number(key: str, default: float) -> float:
            value = config.get_float(key)
            return default if value is None else value

        def integer(key: str, default: int) -> int:
            value = config.get_int(key)
            return default if value is None else value

        def flag(key: str, default: bool) -> bool:
            value = config.get_bool(key)
            return default if value is None else value

        hosting = text("smallModelHosting", defaults.small_model_hosting)
        if hosting not in set(SmallModelHosting):
            raise ValueError(f"smallModelHosting: one of {', '.join(SmallModelHosting)}")
        return cls(
            name_prefix=text("namePrefix", defaults.name_prefix),
            small_model_hosting=SmallModelHosting(hosting),
            small_model_name=text("smallModelName", defaults.small_model_name),
            small_model_version=text("smallModelVersion", defaults.small_model_version),
            small_model_sku=text("smallModelSku", defaults.small_model_sku),
            small_model_capacity=integer("smallModelCapacity", defaults.small_model_capacity),
            serverless_model_id=text("serverlessModelId", defaults.serverless_model_id),
            frontier_model_name=text("frontierModelName", defaults.frontier_model_name),
            frontier_model_version=text("frontierModelVersion", defaults.frontier_model_version),
            frontier_sku=text("frontierSku", defaults.frontier_sku),
            frontier_capacity=integer("frontierCapacity", defaults.frontier_capacity),
            enable_managed_compute=flag("enableManagedCompute", defaults.enable_managed_compute),
            managed_compute_model_id=text("managedComputeModelId", defaults.managed_compute_model_id),
            managed_compute_instance_type=text("managedComputeInstanceType", defaults.managed_compute_instance_type),
            managed_compute_instance_count=integer("managedComputeInstanceCount", defaults.managed_compute_instance_count),
            managed_compute_request_timeout_s=integer("managedComputeRequestTimeoutSeconds",
                                                      defaults.managed_compute_request_timeout_s),
            managed_compute_max_concurrent_requests=integer("managedComputeMaxConcurrentRequests",
                                                            defaults.managed_compute_max_concurrent_requests),
            embeddings_deployment=flag("embeddingsDeployment", defaults.embeddings_deployment),
            embeddings_model_version=text("embeddingsModelVersion", defaults.embeddings_model_version),
            embeddings_sku=text("embeddingsSku", defaults.embeddings_sku),
            embeddings_capacity=integer("embeddingsCapacity", defaults.embeddings_capacity),
            retrain_schedule=text("retrainSchedule", defaults.retrain_schedule),
            retrain_tasks=text("retrainTasks", defaults.retrain_tasks),
            shadow_fraction=text("shadowFraction", defaults.shadow_fraction),
            alert_email=text("alertEmail", defaults.alert_email),
            failure_rate_threshold=number("failureRateThreshold", defaults.failure_rate_threshold),
            accuracy_target=number("accuracyTarget", defaults.accuracy_target),
            maximum_instance_count=integer("maximumInstanceCount", defaults.maximum_instance_count),
            instance_memory_mb=integer("instanceMemoryMb", defaults.instance_memory_mb),
        )
