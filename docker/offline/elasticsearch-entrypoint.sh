#!/bin/bash
# As the official image does: every environment variable whose name holds a dot
# (discovery.type=single-node) becomes an -E setting.
set -euo pipefail
settings=()
while IFS= read -r -d '' entry; do
  if [[ ${entry%%=*} =~ ^[a-z0-9_]+(\.[a-z0-9_]+)+$ ]]; then
    settings+=(-E "$entry")
  fi
done < <(env -0)
exec /usr/share/elasticsearch/bin/elasticsearch "${settings[@]}" "$@"
