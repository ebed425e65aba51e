"""The ground layer: what every other part of shared/ stands on, importing nothing of theirs (only shared/errors.py).

    records        result, shadow and correction records
    tasks          task files' model (labels, schema, tiers, thresholds); task_files reads and updates them
    text_files     decoding text and JSON lines; atomic_files writes a file whole or not at all
    model_files    checked model files
    answers        whether two answers are the same (the one rule), and the normalisers
    metrics        the pure maths of evaluation and monitoring (accuracy, calibration, intervals, drift)
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
