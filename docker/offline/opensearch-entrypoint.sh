#!/bin/bash
# The official image's settings, read the way it reads them: environment variables whose
# names hold a dot are settings; OPENSEARCH_JAVA_OPTS sets the JVM. This image has no
# security plugin, so DISABLE_SECURITY_PLUGIN is moot and plugins.security.* is dropped
# (with a line saying so) rather than refused as an unknown setting.
set -euo pipefail
home=/usr/share/opensearch
settings=(
  cluster.name=docker-cluster
  "node.name=$(hostname)"
  network.host=0.0.0.0
  http.port=9200
  transport.port=9300
  "path.data=$home/data"
  node.roles=cluster_manager,data,ingest,remote_cluster_client
)
while IFS= read -r -d '' entry; do
  name=${entry%%=*}
  if [[ $name =~ ^[a-z0-9_]+(\.[a-z0-9_]+)+$ ]]; then
    if [[ $name == plugins.security.* ]]; then
      echo "opensearch-entrypoint: no security plugin in this image; ignoring $name" >&2
    else
      settings+=("$entry")  # later entries win
    fi
  fi
done < <(env -0)
# shellcheck disable=SC2086  # OPENSEARCH_JAVA_OPTS holds several options
exec "$home/jdk/bin/java" ${OPENSEARCH_JAVA_OPTS:--Xms512m -Xmx512m} \
  -cp "$home/classes:$home/lib/*" OpenSearchContainerNode \
  "$home/cluster" "${OPENSEARCH_PLUGIN_CLASSES:-}" "${settings[@]}"
