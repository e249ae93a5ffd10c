# A stand-in for python:3.11-slim where no registry answers: Debian bookworm's
# Python 3.11 with venv, on the base tools/offline_images.sh imports from a
# debootstrap. Built by that tool as local/python:3.11.
ARG DEBIAN_IMAGE=local/debian:bookworm
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
