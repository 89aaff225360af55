# syntax=docker/dockerfile:1
# One image, two entry points:
#   switchyard operator   the control plane (charts/switchyard runs it as a Deployment)
#   switchyard sidecar    the data plane (the operator's webhook injects it next to apps)
#
# Multi-stage: wheels are built in `builder` (the only stage with a compiler, for any
# dependency without a prebuilt wheel on the target platform); the final stage installs
# them offline and carries no build tools, no pip and no package caches. It runs as a
# numeric non-root user (65532, as the chart and the injected sidecar expect) and
# writes nothing outside /tmp, so it runs with readOnlyRootFilesystem: true.
#
# Not built on the project's machines (no container engine there): tests/chart/
# test_dockerfile.py checks it statically and builds the same wheels with pip.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY switchyard/ switchyard/
# The project and every dependency as wheels (prebuilt where PyPI has them).
RUN pip wheel --wheel-dir /wheels .

# ---------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="switchyard" \
      org.opencontainers.image.description="Kubernetes-native LLM gateway: operator and sidecar" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# Offline install from the builder's wheels, byte-compiled now (the root filesystem is
# read-only at run time), then pip and setuptools removed: nothing installs at run time.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links=/wheels --compile switchyard \
 && python -m pip uninstall -y pip setuptools wheel \
 && rm -rf /root/.cache
# A passwd/group entry for the uid the image runs as: kopf asks for its user name
# (getpass.getuser()), and without an entry for 65532 the operator crash-looped with
# "KeyError: 'getpwuid(): uid not found: 65532'" (the official slim image has none).
# LOGNAME covers a cluster that runs the image under another uid (getpass reads it first).
RUN echo 'switchyard:x:65532:65532:switchyard:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'switchyard:x:65532:' >> /etc/group
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    LOGNAME=switchyard
WORKDIR /tmp
USER 65532:65532
# 4000: sidecar API (bound to 127.0.0.1 in a pod), 4001: sidecar admin (/healthz,
# /readyz, /metrics, config push), 8080: operator liveness (/healthz), 9443: webhook.
EXPOSE 4000 4001 8080 9443
# Kubernetes ignores HEALTHCHECK and uses the probes the chart and the webhook set:
# sidecar readiness GET :4001/readyz, liveness GET :4001/healthz; operator liveness
# GET :8080/healthz. This one serves `docker run` of the sidecar (the default command);
# for the operator set SWITCHYARD_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('SWITCHYARD_HEALTHCHECK_URL', 'http://127.0.0.1:4001/healthz'), timeout=2)"]
ENTRYPOINT ["switchyard"]
CMD ["sidecar"]
