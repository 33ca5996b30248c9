#!/usr/bin/env bash
# Gathers, on a machine with a package registry and the data, what benchmarks/gpu_suite.sh needs on a
# GPU machine with no package registry, in git-ignored folders beside the checkout (or under DEST):
#   .whl/airbench-0.1.8-py3-none-any.whl  airbench for the `fast` and `airbench` steps (PyPI has 0.1.8
#                                         as an sdist only, so it is built into a wheel here)
#   .suite-data/cifar10-jpeg.tar.xz       the data
# (The GANs' FD judge travels with the code: bench/judges/.)
# Usage: BENCH_DATA=path/to/cifar10-jpeg.tar.xz benchmarks/gpu_prepare.sh [DEST]   (default DEST: the checkout)
# Then send .suite-data and .whl along with the checkout (about 19 MB together) and run the suite there with
# BENCH_DATA=.suite-data/cifar10-jpeg.tar.xz, as gpu_suite.sh's header says.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$HERE}
PY=${PYTHON:-python3}
: "${BENCH_DATA:?set BENCH_DATA to the CIFAR-10 archive (e.g. cifar10-jpeg.tar.xz)}"
[ -f "$BENCH_DATA" ] || { echo "error: BENCH_DATA=$BENCH_DATA is not a file; give the archive, the one file the suite needs" >&2; exit 2; }
mkdir -p "$DEST/.whl" "$DEST/.suite-data"
if ! ls "$DEST"/.whl/airbench-*.whl >/dev/null 2>&1; then
  "$PY" -m pip wheel -q airbench==0.1.8 --no-deps -w "$DEST/.whl"
fi
cp "$BENCH_DATA" "$DEST/.suite-data/"
ls -l "$DEST"/.whl/airbench-*.whl "$DEST/.suite-data/$(basename "$BENCH_DATA")"
