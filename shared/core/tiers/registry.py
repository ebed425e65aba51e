"""Builds tiers from configuration, lazily, one instance per tier name per registry; each backend's class and
needs come from its spec (shared/core/backends.py)."""

from __future__ import annotations

import threading

from shared.core.backends import BACKENDS
from shared.core.config import Settings, TierConfig
from shared.core.tiers.base import Tier
from shared.errors import ConfigError


def build_tier(config: TierConfig) -> Tier:
    spec = BACKENDS[config.backend]
    if not spec.installed():
        raise ConfigError(f"tier {config.name} is {config.backend.value}, but {spec.not_installed}")
    return spec.tier_type()(config)


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
        with self._lock:
            tiers = list(self._tiers.values())
        for tier in tiers:
            if BACKENDS[tier.config.backend].async_clients:
                await tier.aclose_async_client()  # a ChatTier, as its spec says

    def add(self, tier: Tier) -> None:
        """Use a ready-made tier under its name (e.g. one shared between cascades)."""
        self._tiers[tier.name] = tier
