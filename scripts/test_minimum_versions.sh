#!/usr/bin/env bash
# Runs the test suite against the lowest versions pyproject.toml admits (scripts/minimum_versions.txt), in a venv
# of its own (default /tmp/simclr-minimum-venv; about 3 GB, as PyPI's torch 2.4.1 is a CUDA build). By hand, when
# a dependency bound changes or code starts to use a newer API; pytest's arguments pass through, e.g.
#   scripts/test_minimum_versions.sh -m "not slow and not distributed and not slurm"
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${MINIMUM_VENV:-/tmp/simclr-minimum-venv}
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with the minimum versions (downloads about 3 GB the first time)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -c scripts/minimum_versions.txt -e '.[dev]'
fi
"$VENV/bin/python" -m pip check
# Native kernels built against this torch stay apart from the ones the main venv built.
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$VENV/torch_extensions}
exec "$VENV/bin/python" -m pytest -q "$@"
