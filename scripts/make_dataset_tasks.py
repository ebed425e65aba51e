"""Regenerate tasks/banking77.yaml and tasks/clinc150.yaml from ../shared/datasets/*/labels.json.

Each label's description is its name in words plus the shortest training query with that label, so the
model sees one real example per label. Run from the repository root: python scripts/make_dataset_tasks.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TASKS = Path(__file__).resolve().parents[1] / "tasks"

SPECS = {
    "banking77": {
        "description": "Banking77: online-banking customer queries, 77 intents (PolyAI, CC BY 4.0).",
        "instruction": "Classify the banking customer's message into the intent it expresses.",
        "allow_none": False,
    },
    "clinc150": {
        "description": "CLINC150: virtual-assistant queries, 150 intents plus out-of-scope (CC BY 3.0).",
        "instruction": "Classify the user's request to a virtual assistant into the intent it expresses.",
        "allow_none": True,
        "none_label": "oos",
    },
}


def shortest_examples(train: Path) -> dict[str, str]:
    best: dict[str, str] = {}
    for line in train.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        text = " ".join(row["text"].split())
        if row["label"] not in best or len(text) < len(best[row["label"]]):
            best[row["label"]] = text
    return best


# Fields `smallfirst train` and `tune` write into a task file.
TUNED = ("threshold", "threshold_source", "tiers", "trained_head", "tier_thresholds", "tier_threshold_sources",
         "calibration")


def main() -> int:
    for name, spec in SPECS.items():
        labels = json.loads((DATASETS / name / "labels.json").read_text(encoding="utf-8"))
        examples = shortest_examples(DATASETS / name / "train.jsonl")
        task = {
            "name": name,
            "kind": "classification",
            **spec,
            "threshold": 0.5,
            "threshold_source": "default (not tuned)",
            "max_input_chars": 2000,
            "max_input_tokens": 500,
            "labels": [
                {"name": label, "description": f'{label.replace("_", " ").strip("?")}, e.g. "{examples[label]}"'}
                for label in labels
            ],
        }
        path = TASKS / f"{name}.yaml"
        if path.exists():  # what training and tuning wrote stays: only the labels are regenerated
            current = yaml.safe_load(path.read_text(encoding="utf-8"))
            task.update({key: current[key] for key in TUNED if key in current})
        path.write_text(yaml.safe_dump(task, sort_keys=False, allow_unicode=True, width=200), encoding="utf-8")
        print(f"wrote {path} ({len(labels)} labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
