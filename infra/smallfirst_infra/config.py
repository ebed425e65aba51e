"""Typed stack configuration with defaults, so that `pulumi up` needs only a location."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class EnvironmentConfig:
    name_prefix: str = "smallfirst"
    small_model_name: str = "Phi-4"
    small_model_version: str = "7"
    small_model_sku: str = "GlobalStandard"
    small_model_capacity: int = 1
    frontier_model_name: str = "gpt-4o"
    frontier_model_version: str = "2024-11-20"
    frontier_sku: str = "GlobalStandard"
    frontier_capacity: int = 50
    enable_managed_compute: bool = False
    managed_compute_model_id: str = "azureml://registries/azureml/models/Phi-4/versions/7"
    managed_compute_instance_type: str = "Standard_NC24ads_A100_v4"
    managed_compute_instance_count: int = 1
    enable_event_subscription: bool = False
    maximum_instance_count: int = 100
    instance_memory_mb: int = 2048
    python_version: str = "3.11"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]{2,10}", self.name_prefix):
            raise ValueError("namePrefix: 3-11 lowercase letters or digits, starting with a letter")
        if self.instance_memory_mb not in (512, 2048, 4096):
            raise ValueError("instanceMemoryMb: 512, 2048 or 4096")

    @classmethod
    def from_pulumi(cls, config: pulumi.Config) -> "EnvironmentConfig":
        defaults = cls()

        def text(key: str, default: str) -> str:
            return config.get(key) or default

        def integer(key: str, default: int) -> int:
            value = config.get_int(key)
            return default if value is None else value

        def flag(key: str, default: bool) -> bool:
            value = config.get_bool(key)
            return default if value is None else value

        return cls(
            name_prefix=text("namePrefix", defaults.name_prefix),
            small_model_name=text("smallModelName", defaults.small_model_name),
            small_model_version=text("smallModelVersion", defaults.small_model_version),
            small_model_sku=text("smallModelSku", defaults.small_model_sku),
            small_model_capacity=integer("smallModelCapacity", defaults.small_model_capacity),
            frontier_model_name=text("frontierModelName", defaults.frontier_model_name),
            frontier_model_version=text("frontierModelVersion", defaults.frontier_model_version),
            frontier_sku=text("frontierSku", defaults.frontier_sku),
            frontier_capacity=integer("frontierCapacity", defaults.frontier_capacity),
            enable_managed_compute=flag("enableManagedCompute", defaults.enable_managed_compute),
            managed_compute_model_id=text("managedComputeModelId", defaults.managed_compute_model_id),
            managed_compute_instance_type=text("managedComputeInstanceType", defaults.managed_compute_instance_type),
            managed_compute_instance_count=integer("managedComputeInstanceCount", defaults.managed_compute_instance_count),
            enable_event_subscription=flag("enableEventSubscription", defaults.enable_event_subscription),
            maximum_instance_count=integer("maximumInstanceCount", defaults.maximum_instance_count),
            instance_memory_mb=integer("instanceMemoryMb", defaults.instance_memory_mb),
        )
