#!/usr/bin/env bash
# The newcomer's first command: install (once), then run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
exec .venv/bin/python tools/demo.py "$@"
