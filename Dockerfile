# syntax=docker/dockerfile:1
#
# The component image: every KFP component of the suite runs in it (and the
# serving image builds on it). The environment is built from requirements.lock
# only, hash-checked, so the image holds exactly the pinned dependencies.
#
# `make image` builds it with all three build arguments:
#
#   docker build \
#     --build-arg LOCK_DIGEST=sha256:$(sha256sum requirements.lock | cut -d' ' -f1) \
#     --build-arg CODE_VERSION=$(git rev-parse HEAD) \
#     --build-arg IMAGE=<registry>/mlops-suite/components:<tag> \
#     -t <registry>/mlops-suite/components:<tag> .
#
# They end up in MLOPS_LOCK_DIGEST, MLOPS_CODE_VERSION and MLOPS_COMPONENT_IMAGE,
# which src/mlops/training/provenance.py records with every MLflow run (in a checkout
# it reads git and the lock instead; in the image there is neither). ENV
# cannot be computed while building, so the lock digest is passed in and
# checked here against the lock actually installed: a wrong or missing
# LOCK_DIGEST fails the build instead of recording false provenance.
#
# The lock is resolved for x86_64 manylinux: build for linux/amd64.

FROM python:3.11.14-slim-bookworm

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

WORKDIR /opt/mlops/build

# -- dependencies (cached until the lock changes) -------------------------------
ARG LOCK_DIGEST
COPY requirements.lock ./
RUN set -eu; \
    actual="sha256:$(sha256sum requirements.lock | cut -d' ' -f1)"; \
    if [ -z "${LOCK_DIGEST}" ]; then \
      echo "error: pass --build-arg LOCK_DIGEST=${actual} (the SHA-256 of requirements.lock; make image does)" >&2; \
      exit 1; \
    fi; \
    if [ "${LOCK_DIGEST}" != "${actual}" ]; then \
      echo "error: LOCK_DIGEST=${LOCK_DIGEST} but requirements.lock is ${actual}" >&2; \
      exit 1; \
    fi; \
    echo "${actual}" > /etc/mlops-lock-digest; \
    chmod 0644 /etc/mlops-lock-digest
# --no-deps: the lock is the whole resolution; with dependencies on, pip resolves extras
# (feast's uvicorn[standard]) against the index again and takes newer releases. pip check
# and lockcheck then prove the installed set is whole, extras included.
COPY requirements.in scripts/lockcheck.py ./
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements.lock \
    && pip check \
    && python lockcheck.py installed requirements.lock --roots requirements.in

# -- the suite itself ---------------------------------------------------------------
COPY pyproject.toml README.md ./
COPY src/ src/
COPY components/ components/
COPY pipelines/ pipelines/
# The example projects, found by name (project=churn) through MLOPS_EXAMPLES; a team's own project is
# pushed to S3 (`mlops project push`) and named by its s3:// URI instead.
COPY examples/ /opt/mlops/examples/
# --no-deps: every dependency came from the lock above. --no-build-isolation:
# build with the lock's setuptools rather than fetching an unpinned one.
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && cd / && rm -rf /opt/mlops/build \
    && python -c "import mlops, components, pipelines"

# -- non-root user ------------------------------------------------------------------
# /gcs, /minio and /s3 are where the KFP v2 launcher puts artifacts; recent
# backends mount emptyDirs there, older ones need them writable by the user.
RUN groupadd --gid 1000 mlops \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/mlops --shell /usr/sbin/nologin mlops \
    && mkdir -p /gcs /minio /s3 \
    && chown 1000:1000 /gcs /minio /s3

# -- provenance (declared last: a new commit or tag rebuilds only these layers) -----
ARG CODE_VERSION=unknown
ARG IMAGE=mlops-suite/components:0.1.0
ENV MLOPS_CODE_VERSION=${CODE_VERSION} \
    MLOPS_EXAMPLES=/opt/mlops/examples \
    MLOPS_LOCK_DIGEST=${LOCK_DIGEST} \
    MLOPS_COMPONENT_IMAGE=${IMAGE} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 1000:1000
WORKDIR /home/mlops
