#!/usr/bin/env bash
# The newcomer's first command: install (once), then run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
# The engine release matching the installed client (tools/demo.py starts it).
.venv/bin/python tools/local_engines.py fetch elasticsearch >/dev/null
exec .venv/bin/python tools/demo.py "$@"
