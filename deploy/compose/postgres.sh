#!/bin/bash
# Postgres for the compose smoke test: a fresh cluster in the container (no volume: every run
# starts empty), superuser `keel` with $POSTGRES_PASSWORD, database `keel`, password auth from
# the compose network. Roles and schemas per service come from keel-provision (compose.yaml).
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
PGDATA=/var/lib/postgresql/data
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    "$BIN/initdb" -D "$PGDATA" -U keel --auth-local=trust --auth-host=scram-sha-256 \
        --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") >/dev/null
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "CREATE DATABASE keel OWNER keel" | "$BIN/postgres" --single -D "$PGDATA" postgres >/dev/null
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c max_connections=200 \
    -c unix_socket_directories=/tmp
