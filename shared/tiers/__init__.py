"""Model tiers: one interface (Tier), four backends."""
