"""The backend registry (shared/core/backends.py): every backend has one complete spec, and what configuration,
the tier registry and telemetry know of a backend comes from it."""

from __future__ import annotations

import pytest

from shared.core.backends import BACKENDS, Backend, StructuredOutput
from shared.core.prices import MODEL_PRICES
from shared.core.config import TierConfig
from shared.core.tiers.base import Tier
from shared.core.tiers.chat import ChatTier


def test_every_backend_has_a_spec_and_no_spec_lacks_a_backend():
    assert set(BACKENDS) == set(Backend)


@pytest.mark.parametrize("backend", list(Backend))
def test_each_spec_is_complete_and_its_tier_class_is_a_tier_in_a_module_of_its_own(backend):
    spec = BACKENDS[backend]
    tier_type = spec.tier_type()
    assert issubclass(tier_type, Tier)
    assert tier_type.__module__ == spec.tier_class.split(":")[0]
    assert [other for other in BACKENDS.values() if other.tier_class.split(":")[0] == tier_type.__module__] == [spec]
    assert isinstance(spec.structured_output, StructuredOutput) and isinstance(spec.logprobs, bool)
    assert spec.gen_ai_system
    assert spec.async_clients == issubclass(tier_type, ChatTier)  # what TierRegistry.aclose_async_clients closes
    assert bool(spec.packages) == bool(spec.not_installed)


def test_a_tier_config_takes_its_defaults_from_its_backend_spec_and_an_unpriced_one_has_no_price_source():
    for backend, spec in BACKENDS.items():
        config = TierConfig(name="trained" if backend == Backend.TRAINED else "small", role="small", backend=backend)
        assert config.prices == (0.0, 0.0)  # free, or (no model) unknown and counted as zero
        assert (config.price_source is not None) == spec.free
        assert config.effective_structured_output == spec.structured_output
        assert config.effective_logprobs == spec.logprobs
    managed = TierConfig(name="trained", role="small", backend=Backend.TRAINED, embedder="azure_openai")
    assert managed.prices == (MODEL_PRICES["text-embedding-3-small"].in_per_m, 0.0)
    assert managed.price_source == "price list: text-embedding-3-small"


def test_only_the_legacy_backend_is_marked_legacy():
    assert [backend for backend, spec in BACKENDS.items() if spec.legacy] == [Backend.FOUNDRY_INFERENCE]
