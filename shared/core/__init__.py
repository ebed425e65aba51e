"""The core: task specs, prompts, confidence, tiers, the acceptance policy and the cascade."""
