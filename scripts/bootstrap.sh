#!/usr/bin/env bash
# Installs everything the project needs into the repository: .venv (Python) and node_modules (Azurite).
# Safe to run again; quick when nothing changed.
#
# llama-cpp-python has no Linux wheels on PyPI, so it compiles here (about 6-10 minutes on 2 cores, once).
# It is built portable (GGML_NATIVE=OFF: AVX2/FMA/F16C on x86-64, no AVX-512, no AMX), so the wheel and the
# venv run on any x86-64 CPU with AVX2 whichever machine compiled them. The wheel is kept in a wheelhouse
# keyed by version and flags, and installed from there only: pip's own cache reuses any earlier build of the
# same version whatever CMAKE_ARGS said, which could bring back a native build from this or another CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
PIP=(.venv/bin/python -m pip --disable-pip-version-check)

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi

llama_version=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)
llama_cmake_args="-DGGML_NATIVE=OFF"
if [ "$(uname -m)" = "x86_64" ]; then
  llama_cmake_args+=" -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
  llama_cmake_args+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
fi
llama_key=$(printf '%s %s' "$llama_version" "$llama_cmake_args" | sha256sum | cut -c1-16)
wheelhouse="${SMALLFIRST_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/smallfirst/wheels}/llama-cpp-python-$llama_key"
if ! ls "$wheelhouse"/llama_cpp_python-"$llama_version"-*.whl >/dev/null 2>&1; then
  echo "bootstrap: compiling llama-cpp-python $llama_version (portable build, once per machine; ~6-10 min on 2 cores)"
  CMAKE_ARGS="$llama_cmake_args" "${PIP[@]}" wheel --quiet --no-cache-dir --no-deps \
    "llama-cpp-python==$llama_version" -w "$wheelhouse.partial"
  mv "$wheelhouse.partial" "$wheelhouse"
fi

stamp=.venv/.installed
installed_key=$(cat .venv/.llama-build 2>/dev/null || true)
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$installed_key" != "$llama_key" ]; then
  echo "bootstrap: installing Python packages into .venv"
  "${PIP[@]}" install --quiet --upgrade pip
  # --only-binary: llama-cpp-python comes from the wheelhouse, never from an sdist build or pip's cache.
  "${PIP[@]}" install --quiet --only-binary llama-cpp-python --find-links "$wheelhouse" -e '.[embedded,eval,dev]'
  if [ "$installed_key" != "$llama_key" ]; then  # a venv from an earlier build keeps its old wheel otherwise
    "${PIP[@]}" install --quiet --force-reinstall --no-deps --no-index --find-links "$wheelhouse" \
      "llama-cpp-python==$llama_version"
    echo "$llama_key" > .venv/.llama-build
  fi
  touch "$stamp"
fi
if [ ! -x node_modules/.bin/azurite ]; then
  echo "bootstrap: installing Azurite into node_modules"
  npm install --no-audit --no-fund --loglevel=error
fi
