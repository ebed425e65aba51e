#!/usr/bin/env bash
# README command 1: set up, then run the samples through the app on the embedded model and print results.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m localdev.demo
