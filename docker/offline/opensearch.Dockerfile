# OpenSearch from Maven Central: the codelibs runner and its plugin jars (what
# tools/local_engines.py runs), answering to the official image's settings, so the tests
# and docker/compose.yaml run it under the official name where no registry answers.
# OpenSearchContainerNode starts one node whose settings win over the runner's
# single-JVM defaults, so nodes in separate containers form one cluster.
# Context (assembled by tools/offline_images.sh): lib/ (the runner's and plugins' jars),
# jdk/ (jlinked from the host's JDK), OpenSearchContainerNode.java and
# opensearch-entrypoint.sh. PLUGINS: the plugin classes to load, comma-separated.
ARG DEBIAN_IMAGE=local/debian:bookworm
FROM ${DEBIAN_IMAGE}
ARG PLUGINS=""
RUN useradd --uid 1000 --gid 0 --home-dir /usr/share/opensearch --no-create-home opensearch
COPY jdk /usr/share/opensearch/jdk
COPY lib /usr/share/opensearch/lib
COPY OpenSearchContainerNode.java opensearch-entrypoint.sh /usr/share/opensearch/bin/
WORKDIR /usr/share/opensearch
RUN jdk/bin/javac -cp 'lib/*' -d classes bin/OpenSearchContainerNode.java \
 && mkdir -p data cluster \
 && chown -R 1000:0 data cluster
ENV OPENSEARCH_PLUGIN_CLASSES=${PLUGINS}
USER 1000
EXPOSE 9200 9300
ENTRYPOINT ["/usr/share/opensearch/bin/opensearch-entrypoint.sh"]
