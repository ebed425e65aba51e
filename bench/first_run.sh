#!/usr/bin/env bash
# A newcomer's first run, measured: clone the repository into a temporary folder, run the README's demo command
# with empty pip and npm caches, then the README's test command; print both wall times and the demo's table.
#
#   bash bench/first_run.sh [--cold] [--skip-tests]
#     --cold        also an empty llama.cpp wheelhouse, so the test command compiles llama-cpp-python
#     --skip-tests  the demo only
# Raw output: tee it into bench/results/first_run.txt.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cold=false; tests=true
for arg in "$@"; do
  case "$arg" in --cold) cold=true ;; --skip-tests) tests=false ;; *) echo "unknown option $arg" >&2; exit 2 ;; esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PIP_CACHE_DIR="$work/pip-cache" npm_config_cache="$work/npm-cache"
$cold && export SMALLFIRST_WHEELHOUSE="$work/wheelhouse"
# The clone sits beside a link to ../shared, as CI's checkout does (the suite reads the datasets from there).
mkdir "$work/checkout"
git clone --quiet "$repo" "$work/checkout/smallfirst"
[ -d "$repo/../shared" ] && ln -s "$(cd "$repo/../shared" && pwd)" "$work/checkout/shared"
cd "$work/checkout/smallfirst"
echo "first_run: $(git log -1 --format='%h %s' | cut -c1-90)"
echo "first_run: $(nproc) cores; empty pip and npm caches; llama.cpp wheelhouse: $($cold && echo empty || echo as on this machine)"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
start=$(now_ms)
set +e
bash scripts/demo.sh
demo_rc=$?
demo_ms=$(( $(now_ms) - start ))
test_rc=skipped; test_ms=0
if $tests; then
  start=$(now_ms)
  bash scripts/test.sh -q -p no:cacheprovider
  test_rc=$?
  test_ms=$(( $(now_ms) - start ))
fi
set -e
printf 'first_run: demo command  rc=%s  %d.%d s  (bash scripts/demo.sh)\n' "$demo_rc" $((demo_ms / 1000)) $((demo_ms % 1000 / 100))
printf 'first_run: test command  rc=%s  %d.%d s  (bash scripts/test.sh)\n' "$test_rc" $((test_ms / 1000)) $((test_ms % 1000 / 100))
[ "$demo_rc" = 0 ] && { [ "$test_rc" = 0 ] || [ "$test_rc" = skipped ]; }
