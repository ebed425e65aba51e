#!/usr/bin/env bash
# README command 2: set up, then run the whole test suite (CI runs exactly this via .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --dev
exec .venv/bin/python -m pytest "$@"
