"""The README's demo on the local default profile (the trained tier alone): every sample gets its right answer,
and an item the trained tier is unsure of visibly escalates to review."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shared.foundation.answers import fields_correct

REPO = Path(__file__).resolve().parents[2]


def test_demo_on_the_trained_profile_answers_every_sample_right_and_shows_an_escalation(tmp_path):
    rows_file = tmp_path / "rows.jsonl"
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMALLFIRST_")}
    result = subprocess.run([sys.executable, "-m", "localdev.demo", "--timeout", "300", "--records", str(rows_file)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "local tiers: trained)" in result.stdout  # the default profile needs no llama.cpp
    rows = {f"{row['task']}/{row['id']}": row for row in map(json.loads, rows_file.read_text().splitlines())}
    expected = {key: value for key, value in json.loads((REPO / "samples" / "expected.json").read_text()).items()
                if not key.startswith("_")}
    assert rows.keys() == expected.keys()
    for key, right in expected.items():
        answer = rows[key]["answer"]
        assert (all(fields_correct(answer, right).values()) if isinstance(right, dict) else answer == right), \
            (key, answer, right)
    escalated = [row for row in rows.values() if row["status"] in ("escalated", "needs_review")]
    assert escalated and all(row["attempts"][0]["reason"] for row in escalated)
    assert "items done" in result.stdout and "Try next:" in result.stdout
    assert "curl -s -X POST http://127.0.0.1:" in result.stdout
