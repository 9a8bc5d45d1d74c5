# Postgres 15 and NATS (nats-server 2.9, Debian's) for the compose smoke test, on the same local
# base as the services (scripts/images.sh base), because no image can be pulled here. One image,
# two containers (compose.yaml picks the command).
ARG BASE_IMAGE=keel-base-runtime:bookworm
FROM ${BASE_IMAGE}
USER 0
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 nats-server curl \
    && rm -rf /var/lib/apt/lists/*
COPY postgres.sh /usr/local/bin/keel-postgres
USER 65532:65532
