#!/usr/bin/env bash
# Reproduce the reports under docs/eval: a seeded sample (SAMPLE, default 200) of each dataset's dev split
# through the embedded tier, then a report for each. Resumable: pairs already in a run file are skipped.
# A different SAMPLE draws a different sample (not a superset), so change it only with a fresh run file.
# About 5-15 s an item on 2 cores (more labels, longer).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/datasets
for spec in banking77:banking77 clinc150:clinc150 receipt:sroie; do
  task=${spec%%:*}; dataset=${spec##*:}
  .venv/bin/smallfirst eval "$task" --data "$DATA/$dataset/dev.jsonl" --sample "${SAMPLE:-200}" --seed 7 \
    --tiers small --out "docs/eval/$dataset/run.jsonl" --concurrency 1
  .venv/bin/smallfirst report "docs/eval/$dataset/run.jsonl" --out "docs/eval/$dataset"
done
