#!/usr/bin/env bash
# The newcomer's first command: install (once), then run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
.venv/bin/python tools/local_engines.py fetch all >/dev/null
exec .venv/bin/python tools/demo.py "$@"
