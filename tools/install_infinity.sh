#!/usr/bin/env bash
# Installs infinity-emb, the peer serving system of bench/server_throughput.py,
# in a virtual environment of its own: it pins numpy<2 and transformers 4.x,
# which rerank-bridge's own environment must not get. The `[all]` extra is
# avoided on purpose: it pulls a CUDA torchvision that breaks its start-up.
# Prints the path of the infinity_emb command.
set -euo pipefail
venv="${1:-/var/tmp/rerank-bridge/infinity-venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "infinity-emb[server,torch,optimum]==0.0.78"
echo "$venv/bin/infinity_emb"
