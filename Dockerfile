# mevwatch image: the package compiled with mypyc in a build stage, installed into a slim
# runtime that runs as a non-root user with a read-only root filesystem (the Helm chart
# mounts /var/lib/mevwatch and /tmp writable).
#   docker build -t ghcr.io/mevwatch/mevwatch:0.1.0 .
# The GNN extra (torch) is not in this image; build with --build-arg EXTRAS=gnn for it.
FROM python:3.11-slim-bookworm AS build
ARG EXTRAS=""
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY monitor monitor
COPY streams streams
COPY models models
COPY dashboards dashboards
COPY sim sim
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"

FROM python:3.11-slim-bookworm
RUN groupadd --gid 10001 mevwatch && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin mevwatch \
    && mkdir -p /var/lib/mevwatch /etc/mevwatch && chown 10001:10001 /var/lib/mevwatch
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels mevwatch && rm -rf /wheels
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MEVWATCH_DATA_DIR=/var/lib/mevwatch
USER 10001:10001
WORKDIR /var/lib/mevwatch
EXPOSE 8080
ENTRYPOINT ["mevwatch"]
CMD ["--config", "/etc/mevwatch/mevwatch.yaml", "run"]
