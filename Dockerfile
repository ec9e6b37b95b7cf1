# syntax=docker/dockerfile:1
# mevwatch image: the package compiled with mypyc in a build stage, installed into a slim
# runtime that runs as a non-root user with a read-only root filesystem (the Helm chart
# mounts /var/lib/mevwatch and /tmp writable). One Dockerfile, one image per set of extras
# (pyproject.toml), chosen with EXTRAS; the runtime installs exactly the extras the build
# stage made wheels for:
#   docker build -t ghcr.io/mevwatch/mevwatch:0.1.0 .
#       ingest, detect (rules only), attest, replay against a ClickHouse server: no torch, no chDB
#   docker build --build-arg EXTRAS=gnn -t ghcr.io/mevwatch/mevwatch-gnn:0.1.0 .
#       detect with the graph model (torch; the GPU nodes' image, detect.gpu in the chart)
#   docker build --build-arg EXTRAS=embedded -t ghcr.io/mevwatch/mevwatch-embedded:0.1.0 .
#       everything in one process on embedded ClickHouse (chDB): `mevwatch run`, `replay --store`
# (EXTRAS=gnn,embedded for both.) The wheels are never copied into the runtime: its install
# mounts the build stage's wheel folder (BuildKit), so no layer holds them.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY monitor monitor
COPY streams streams
COPY models models
COPY dashboards dashboards
COPY sim sim
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"

FROM ${PYTHON_IMAGE}
ARG EXTRAS=""
RUN groupadd --gid 10001 mevwatch && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin mevwatch \
    && mkdir -p /var/lib/mevwatch /etc/mevwatch && chown 10001:10001 /var/lib/mevwatch
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels "mevwatch${EXTRAS:+[$EXTRAS]}"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MEVWATCH_DATA_DIR=/var/lib/mevwatch
LABEL org.opencontainers.image.source="https://github.com/mevwatch/mevwatch" \
      io.mevwatch.extras="${EXTRAS}"
USER 10001:10001
WORKDIR /var/lib/mevwatch
EXPOSE 8080
ENTRYPOINT ["mevwatch"]
CMD ["--config", "/etc/mevwatch/mevwatch.yaml", "run"]
