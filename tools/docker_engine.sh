#!/usr/bin/env bash
# A Docker engine for the container tests (tests/deployment/test_containers.py).
#   bash tools/docker_engine.sh start   # a dockerd that answers, else why not (exit 1)
#   bash tools/docker_engine.sh stop    # stops the dockerd `start` started, if it did
# `start` uses an engine that already answers; otherwise, as root with apt, it installs
# Debian's docker.io (with debootstrap for tools/offline_images.py and docker-compose)
# and starts dockerd in the background. Nothing of this outlives the machine.
# With $RERANK_DOCKER_DATA_ROOT (the cold run's, .ci/cold-machine.sh) the dockerd it starts
# keeps its images there, and an engine that already answers is refused: its image store
# is not the empty one asked for.
set -euo pipefail
pidfile=/tmp/rerank-bridge-dockerd.pid
log=/tmp/rerank-bridge-dockerd.log

answers() { docker info >/dev/null 2>&1; }

start() {
  if answers; then
    if [ -n "${RERANK_DOCKER_DATA_ROOT:-}" ]; then
      echo "docker engine: one already answers, with an image store of its own; stop it for a run on an empty one" >&2
      return 1
    fi
    echo "docker engine: one already answers"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "docker engine: none answers, and only root can install and start one" >&2
    return 1
  fi
  if ! command -v apt-get >/dev/null; then
    echo "docker engine: none answers, and there is no apt-get to install Debian's docker.io" >&2
    return 1
  fi
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v docker-compose >/dev/null; then
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends docker.io debootstrap docker-compose >/dev/null; }; then
      echo "docker engine: apt-get could not install docker.io, debootstrap and docker-compose" >&2
      return 1
    fi
  fi
  dockerd ${RERANK_DOCKER_DATA_ROOT:+--data-root "$RERANK_DOCKER_DATA_ROOT"} >"$log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 60); do
    if answers; then
      echo "docker engine: started dockerd (log: $log)"
      return 0
    fi
    sleep 1
  done
  echo "docker engine: dockerd did not answer within 60 s; its log: $(tail -5 "$log")" >&2
  return 1
}

stop() {
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    # Until it has stopped its containers and unmounted their layers (the image store may
    # be removed next).
    for _ in $(seq 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    rm -f "$pidfile"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
