"""Model tiers: one interface (Tier), one module per backend, and the registry that builds them (from each
backend's spec in shared/core/backends.py)."""
