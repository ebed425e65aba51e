"""smallfirst core: tasks, tiers, confidence, the small-to-frontier cascade. Never imports azure.functions."""
