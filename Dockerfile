# soma-audit image: `docker build -t ghcr.io/soma/soma-audit:0.1.0 .` (docs/deploy.md).
# Stage 1 builds the wheel (with checks/, remediations/, manifests/, config/ and demo/
# inside, as pyproject.toml force-includes them) and the wheels of its dependencies,
# with the `live` extra so that OpenFGA, Prometheus and Kafka endpoints can be probed too.
FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY soma_audit ./soma_audit
COPY checks ./checks
COPY remediations ./remediations
COPY manifests ./manifests
COPY config ./config
COPY demo ./demo
RUN pip wheel --wheel-dir /wheels ".[live]"

# Stage 2: the slim runtime gets the wheels only (no compiler, no sources, no pip cache)
# and runs as uid/gid 10001, the runAsUser of manifests/deploy.
FROM python:3.11.14-slim-bookworm
# The package version (soma_audit/__init__.py; tests/unit/test_deploy.py keeps it in sync).
ARG VERSION=0.1.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 soma-audit \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin soma-audit
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "soma-audit[live]==${VERSION}"
USER 10001:10001
WORKDIR /tmp
EXPOSE 9464
ENTRYPOINT ["soma-audit"]
CMD ["--help"]
