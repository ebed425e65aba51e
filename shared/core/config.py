"""All runtime configuration, read from environment variables / app settings in one place.

Tiers are named ``trained``, ``small``, ``small2`` and ``frontier``; each is configured by
``SMALLFIRST_<NAME>_<FIELD>`` (for example ``SMALLFIRST_FRONTIER_BACKEND=azure_openai``). With nothing set,
``trained`` is the local embedding classifier, ``small`` is the embedded llama.cpp model when the ``embedded``
extra is installed (else there is no small tier), and there is no frontier. ``SMALLFIRST_LOCAL_PROFILE``
chooses between those local defaults: ``trained`` (the trained tier alone) or ``embedded`` (with SmolLM2). A tier's role (``small`` or ``frontier``) is a field of its own
(``SMALLFIRST_<NAME>_ROLE``); each name has a default role, so the usual setups need not set it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Mapping, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from shared.core.backends import BACKENDS, Backend, StructuredOutput
from shared.core.prices import ModelPrice, model_price
from shared.errors import ConfigError
from shared.foundation import PROJECT_ROOT
from shared.foundation.tasks import DEFAULT_ROLES, Role

PREFIX = "SMALLFIRST_"
# Tiers that exist with nothing configured (both run locally at no cost), and their default backends; one whose
# backend needs packages only where they are installed (llama.cpp compiles on install, so the default profile
# skips the embedded one).
LOCAL_DEFAULTS = {"trained": Backend.TRAINED, "small": Backend.EMBEDDED}
M = TypeVar("M", bound=BaseModel)


LocalProfile = Literal["trained", "embedded"]


def always_configured(profile: LocalProfile | None = None) -> dict[str, Backend]:
    """The local tiers that exist with nothing configured. One whose backend needs packages: with no profile, where
    they are installed; with a profile, where the profile is that backend (embedded)."""
    def wanted(backend: Backend) -> bool:
        spec = BACKENDS[backend]
        if not spec.packages:
            return True
        return spec.installed() if profile is None else profile == backend.value

    return {name: backend for name, backend in LOCAL_DEFAULTS.items() if wanted(backend)}


# The OpenAI v1 API's path on a resource (https://<resource>.<domain>/openai/v1/), for the backends whose spec says
# v1_api.
V1_PATH = "/openai/v1/"
# Managed-compute online endpoints (https://<endpoint>.<region>.inference.ml.azure.com): Foundry reaches them at
# their root, with an `azureml-model-deployment` header when a deployment is named.
MANAGED_COMPUTE_DOMAIN = ".inference.ml.azure.com"
# Hub-based serverless endpoints, which only the legacy foundry_inference backend serves.
HUB_SERVERLESS_DOMAIN = ".models.ai.azure.com"


def is_managed_compute(endpoint: str | None) -> bool:
    return bool(endpoint) and (urlsplit(endpoint).hostname or "").endswith(MANAGED_COMPUTE_DOMAIN)


class TierConfig(BaseModel):
    """One model tier. Unset capability fields take the backend's defaults (its spec in backends.py), unset prices
    its model's listed price (prices.py). A setting
    of no field is an error (a misspelt SMALLFIRST_SMALL_ENDPONT would otherwise leave the endpoint unset without a
    word), and every number is finite."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str
    role: Role = Field(description="frontier: the last resort, whose answers need no threshold to be accepted")
    backend: Backend = Backend.EMBEDDED
    endpoint: str | None = None
    model: str | None = Field(default=None, description="model or deployment name")
    api_key: SecretStr | None = Field(default=None, description="unset: Entra ID via DefaultAzureCredential")
    deployment: str | None = Field(default=None, description="a managed-compute endpoint's deployment to route to")
    # Reasoning models (GPT-5 family) take `reasoning_effort`; above `none` they refuse temperature and logprobs
    # ("Azure OpenAI reasoning models", https://learn.microsoft.com/azure/ai-foundry/openai/how-to/reasoning,
    # checked 2026-12-06), so such a tier samples at the model's own temperature and scores by agreement.
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    structured_output: StructuredOutput | None = None
    logprobs: bool | None = None
    samples: int = Field(default=5, ge=2, le=20, description="k for sample agreement when no logprobs")
    samples_per_request: int = Field(default=1, ge=1, le=20, description="choices per request (`n`) if supported")
    sample_temperature: float = Field(default=0.7, gt=0.0, le=2.0)
    max_input_tokens: int = Field(default=6000, gt=0)
    max_output_tokens: int = Field(default=512, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    price_in_per_m: float | None = Field(default=None, ge=0)
    price_out_per_m: float | None = Field(default=None, ge=0)
    price_cached_in_per_m: float | None = Field(default=None, ge=0)
    # embedded only
    model_path: Path | None = None
    n_ctx: int = Field(default=8192, ge=512)
    n_threads: int | None = Field(default=None, ge=1)
    # llama.cpp's repacked weight layouts; unset: on unless the build has AMX, which crashes (llama_session.py)
    extra_buffer_types: bool | None = None
    # trained only: the folder of head artifacts (<heads_dir>/<task>/<version>/)
    heads_dir: Path = Field(default_factory=lambda: PROJECT_ROOT / "models")
    # trained only: where retrained heads and their activations live: `local` (heads_dir) or `blob` (the container
    # heads_container of the storage connection heads_connection); the active head is re-checked every
    # heads_refresh_s, so a newly activated head is picked up without a restart
    heads_store: Literal["local", "blob"] = "local"
    heads_connection: str = "DataStorage"
    heads_container: str = "models"
    heads_refresh_s: float = Field(default=60.0, ge=0.0)
    # trained only: the embedder. `auto`: per task, the local multilingual USE-m for a task that declares languages
    # other than English alone, else the local English MiniLM; or one for every task: `minilm`, `use_multilingual`,
    # or `azure_openai` (an embeddings deployment on `endpoint`). The rule: shared/learning/serving.py:embedder_kind.
    embedder: Literal["auto", "minilm", "use_multilingual", "azure_openai"] = "auto"
    embeddings_deployment: str = "text-embedding-3-small"

    @field_validator("endpoint")
    @classmethod
    def _an_http_url(cls, endpoint: str | None) -> str | None:
        if endpoint is not None:
            url = urlsplit(endpoint)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"{endpoint!r} is not an http(s) URL")
        return endpoint

    @model_validator(mode="after")
    def _consistent(self) -> "TierConfig":
        if self.samples_per_request > self.samples:
            raise ValueError(f"samples_per_request ({self.samples_per_request}) is more than samples ({self.samples})")
        if (self.name == "trained") != (self.backend == Backend.TRAINED):
            raise ValueError("the trained tier, and it alone, has backend trained (train and retrain fit its heads)")
        if self.reasoning_effort is not None and not BACKENDS[self.backend].reasoning_effort:
            raise ValueError(f"reasoning_effort is for the OpenAI-API backends, not {self.backend.value}")
        if self.reasons and self.effective_logprobs:
            raise ValueError(f"reasoning_effort {self.reasoning_effort} takes no logprobs: set logprobs false (the tier "
                             "then scores by sample agreement) or reasoning_effort none")
        if self.deployment and not (self.backend == Backend.FOUNDRY and is_managed_compute(self.endpoint)):
            raise ValueError(f"deployment is for backend foundry on a managed-compute endpoint (https://<endpoint>."
                             f"<region>{MANAGED_COMPUTE_DOMAIN}), not backend {self.backend.value} at {self.endpoint!r}")
        if BACKENDS[self.backend].v1_api and self.endpoint and not is_managed_compute(self.endpoint):
            url = urlsplit(self.endpoint)
            if (url.hostname or "").endswith(HUB_SERVERLESS_DOMAIN):
                raise ValueError(f"{self.endpoint!r} is a hub-based serverless endpoint: use backend "
                                 f"{Backend.FOUNDRY_INFERENCE.value} (legacy) for it")
            if url.path.rstrip("/") not in ("", V1_PATH.rstrip("/")) or url.query:
                raise ValueError(f"{self.endpoint!r}: the OpenAI v1 API is at <resource>{V1_PATH}; give the resource "
                                 f"endpoint ({url.scheme}://{url.netloc}/) or that URL")
        return self

    @property
    def effective_structured_output(self) -> StructuredOutput:
        return self.structured_output or BACKENDS[self.backend].structured_output

    @property
    def reasons(self) -> bool:
        """A reasoning model asked to reason: it takes no temperature and no logprobs."""
        return self.reasoning_effort not in (None, "none")

    @property
    def effective_logprobs(self) -> bool:
        return BACKENDS[self.backend].logprobs if self.logprobs is None else self.logprobs

    def _listed_price(self) -> ModelPrice | None:
        """The price the tier has without PRICE_* settings: nothing where it runs here, else its model's listed price
        (a trained tier embedding through Azure OpenAI: its embeddings deployment's)."""
        if self.backend == Backend.TRAINED and self.embedder == "azure_openai":
            return model_price(self.embeddings_deployment)
        return ModelPrice(0.0, 0.0) if BACKENDS[self.backend].free else model_price(self.model)

    @property
    def price_source(self) -> str | None:
        """Where the tier's prices come from; None where they are unknown (no listed price for its model and its
        PRICE_* settings not both set): its attempts record their cost as unknown until they are."""
        if self.price_in_per_m is not None and self.price_out_per_m is not None:
            return "PRICE_* settings"
        if self._listed_price() is None:
            return None
        if BACKENDS[self.backend].free and self.embedder != "azure_openai":
            return "runs locally, free"
        return f"price list: {self.embeddings_deployment if self.backend == Backend.TRAINED else self.model}"

    @property
    def price_warning(self) -> str | None:
        if self.price_source is not None:
            return None
        prefix = f"{PREFIX}{self.name.upper()}_"
        model = f"model {self.model!r}" if self.model else "no model set"
        return (f"tier {self.name} ({model}) has no known price: its costs are recorded as unknown and left out of "
                f"savings until {prefix}PRICE_IN_PER_M and {prefix}PRICE_OUT_PER_M are set")

    @property
    def prices(self) -> tuple[float, float]:
        """USD per 1M tokens (input, output): the PRICE_* settings, else the listed price; zero where unknown."""
        listed = self._listed_price() or ModelPrice(0.0, 0.0)
        return (
            listed.in_per_m if self.price_in_per_m is None else self.price_in_per_m,
            listed.out_per_m if self.price_out_per_m is None else self.price_out_per_m,
        )

    @property
    def price_cached_in(self) -> float:
        if self.price_cached_in_per_m is not None:
            return self.price_cached_in_per_m
        listed = self._listed_price()
        cached = listed.cached_in_per_m if listed and self.price_in_per_m is None else None
        return self.prices[0] if cached is None else cached

    def cost_usd(self, tokens_in: int, tokens_out: int, tokens_cached: int = 0) -> float:
        """`tokens_cached`: the part of `tokens_in` the provider served from its prompt cache."""
        price_in, price_out = self.prices
        return ((tokens_in - tokens_cached) * price_in + tokens_cached * self.price_cached_in
                + tokens_out * price_out) / 1_000_000


class Settings(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)
    tasks_dir: Path = PROJECT_ROOT / "tasks"
    tiers: dict[str, TierConfig]
    concurrency: int = Field(default=8, ge=1, le=256)
    max_batch_items: int = Field(default=100, ge=1)
    # blob processing (the Functions app)
    max_blob_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    chunk_items: int = Field(default=100, ge=1)
    claim_ttl_s: float = Field(default=60.0, ge=2.0, description="a dead worker's work is taken over after this")
    # overrides every task's shadow_fraction (e.g. 0.02 in Azure); unset: each task's own (default 0)
    shadow_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    # scheduled retraining (functions/retrain.py; its schedule is the app setting SMALLFIRST_RETRAIN_SCHEDULE):
    # the tasks to retrain (comma-separated; none: off) from the results and corrections of the last retrain_days
    retrain_tasks: list[str] = Field(default_factory=list)
    retrain_days: int = Field(default=30, ge=1)

    @field_validator("retrain_tasks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        tiers: dict[str, TierConfig] = {}
        profile = env.get(f"{PREFIX}LOCAL_PROFILE") or None
        if profile not in (None, "trained", "embedded"):
            raise ConfigError(f"invalid configuration: {PREFIX}LOCAL_PROFILE must be trained or embedded, not {profile!r}")
        local = always_configured(profile)
        for name, role in DEFAULT_ROLES.items():
            prefix = f"{PREFIX}{name.upper()}_"
            fields = _fields_with_prefix(env, prefix)
            if "name" in fields:
                raise ConfigError(f"invalid configuration: {prefix}NAME is not a setting (a tier's name is fixed)")
            if "api_version" in fields:
                raise ConfigError(f"invalid configuration: {prefix}API_VERSION is not a setting: the OpenAI v1 API "
                                  f"({V1_PATH}) takes no api-version; remove it")
            if fields and name not in local and "backend" not in fields:  # else a remote tier would run locally
                raise ConfigError(f"invalid configuration: {prefix}BACKEND is not set, though "
                                  f"{', '.join(prefix + key.upper() for key in sorted(fields))} is: set it to one of "
                                  f"{', '.join(b.value for b in Backend)}")
            if fields or name in local:
                defaults = {"name": name, "role": role, "backend": local.get(name, Backend.EMBEDDED)}
                tiers[name] = _validate(TierConfig, {**defaults, **fields}, f"{PREFIX}{name.upper()}_")
        general = {
            key: value
            for key, value in _fields_with_prefix(env, PREFIX).items()
            if key in cls.model_fields and key != "tiers"
        }
        return _validate(cls, {**general, "tiers": tiers}, PREFIX)


def _fields_with_prefix(env: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {key[len(prefix):].lower(): value for key, value in env.items() if key.startswith(prefix) and value != ""}


def _validate(model: type[M], data: dict, prefix: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(  # an error of no one field is the tier's (or the app's) as a whole
            f"{prefix}{'_'.join(str(p) for p in err['loc']).upper() or '*'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc

