#!/usr/bin/env bash
# README command 1: set up, then run samples/ through the Functions app on the local tiers and print a table.
#   bash scripts/demo.sh              the trained tier (no compiler needed; about a minute to set up)
#   bash scripts/demo.sh --embedded   also the embedded SmolLM2 tier (compiles llama.cpp once per machine)
#   bash scripts/demo.sh --serve      keep Azurite and the local host running afterwards, to try more
set -euo pipefail
cd "$(dirname "$0")/.."
bootstrap_args=()
for arg in "$@"; do
  [ "$arg" = "--embedded" ] && bootstrap_args=(--embedded)
done
bash scripts/bootstrap.sh ${bootstrap_args[@]+"${bootstrap_args[@]}"}
echo "demo: starting Azurite and the local Functions host"
exec .venv/bin/python -m localdev.demo "$@"
