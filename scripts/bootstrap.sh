#!/usr/bin/env bash
# Installs everything the project needs into the repository: .venv (Python) and node_modules (Azurite).
# Safe to run again; quick when nothing changed. llama-cpp-python compiles on first install (~6-10 min).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[embedded,eval,dev]'
  touch "$stamp"
fi
if [ ! -x node_modules/.bin/azurite ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
