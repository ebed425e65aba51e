"""Model tiers: one interface (Tier), four backends, and the registry that builds them."""
