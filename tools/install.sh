#!/usr/bin/env bash
# Creates .venv and installs rerank-bridge with everything the tests and the
# demo need. Safe to re-run: pip skips what is already there.
# PyPI's torch is the CUDA build (a few GB); the first run downloads it.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --editable ".[dev]"
