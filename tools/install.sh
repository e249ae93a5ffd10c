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
# grpcurl and ghz (the tests and the README call the server with them), built
# from the Go module proxy into .tools/bin; skipped where there is no Go.
if command -v go >/dev/null; then
  for tool in github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4 github.com/bojand/ghz/cmd/ghz@v0.93.0; do
    name=$(basename "${tool%@*}")
    [ -x ".tools/bin/$name" ] || GOBIN="$PWD/.tools/bin" go install "$tool"
  done
else
  echo "no Go toolchain: grpcurl and ghz not installed (their tests skip, or fail in CI)" >&2
fi
