"""Offline evaluation: eval runs, metrics, reports and threshold tuning."""
