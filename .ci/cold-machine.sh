# Sourced by .ci/run when RERANK_COLD=1: the run then meets what a fresh machine has, while
# this machine's own stores stay as they are. Every cache the install, the engines and the
# images would reuse points into one new folder, removed when the run ends (.ci/run's trap):
# pip's wheels, Go's module and build caches, Hugging Face's and torch's caches (all under
# $XDG_CACHE_HOME), the Maven repository, the engine home (and the test vectors beside it),
# the image builder's work folder, and Docker's image store (a dockerd of the run's own,
# tools/docker_engine.sh). What it cannot empty is the machine itself: the JDKs, Maven, Go,
# and Debian's docker.io and chromium once installed.
for made in .venv .tools .clients; do
  if [ -e "$made" ]; then
    echo "RERANK_COLD=1 runs as a fresh machine would, from a fresh clone; this checkout has $made" >&2
    exit 2
  fi
done
# In /var/tmp and readable by all: Elasticsearch runs as its own user and reads its files here.
cold_home=$(mktemp -d /var/tmp/rerank-bridge-cold.XXXXXX)
chmod 755 "$cold_home"
export XDG_CACHE_HOME="$cold_home/cache"
export GOPATH="$cold_home/go" GOFLAGS="-modcacherw"
export MAVEN_OPTS="-Dmaven.repo.local=$cold_home/maven ${MAVEN_OPTS:-}"
export RERANK_ENGINE_HOME="$cold_home/engines"
export RERANK_IMAGE_WORK="$cold_home/images"
export RERANK_DOCKER_DATA_ROOT="$cold_home/docker"
echo "cold run: empty pip, Go, Maven, engine and image stores under $cold_home (removed at the end)"
