# Elasticsearch from Maven Central's integ-test distribution (what tools/local_engines.py
# runs), laid out as the official image is and answering to the same settings, so the
# tests and docker/compose.yaml run it under the official name where no registry answers.
# Context (assembled by tools/offline_images.sh): engine/ (the unpacked distribution),
# jdk/ (a runtime jlinked from the host's JDK: the integ-test zip bundles none) and
# elasticsearch-entrypoint.sh.
ARG DEBIAN_IMAGE=local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN useradd --uid 1000 --gid 0 --home-dir /usr/share/elasticsearch --no-create-home elasticsearch
COPY --chown=1000:0 engine /usr/share/elasticsearch
COPY jdk /usr/share/elasticsearch/jdk
COPY elasticsearch-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# The official image's defaults: one cluster name, every interface.
RUN printf 'cluster.name: docker-cluster\nnetwork.host: 0.0.0.0\n' > /usr/share/elasticsearch/config/elasticsearch.yml \
 && mkdir -p /usr/share/elasticsearch/data /usr/share/elasticsearch/logs \
 && chown -R 1000:0 /usr/share/elasticsearch/config /usr/share/elasticsearch/data /usr/share/elasticsearch/logs
WORKDIR /usr/share/elasticsearch
USER 1000
EXPOSE 9200 9300
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
