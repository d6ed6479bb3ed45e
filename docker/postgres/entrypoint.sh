#!/bin/sh
# Entry point of the ovbench-postgres stand-in image (see Dockerfile): on first start, an empty
# PGDATA gets a cluster with POSTGRES_USER (superuser, POSTGRES_PASSWORD) and POSTGRES_DB, as the
# official postgres image does; then PostgreSQL runs in the foreground, listening on all
# addresses. Any other command runs as given.
set -eu

if [ "${1:-}" != postgres ]; then
    exec "$@"
fi
shift

PGDATA=${PGDATA:-/var/lib/postgresql/data}
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
AUTH=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$AUTH" != trust ]; then
        echo "error: the database is not initialized and POSTGRES_PASSWORD is not set" >&2
        echo "       (or set POSTGRES_HOST_AUTH_METHOD=trust to allow every connection)" >&2
        exit 1
    fi
    echo "initializing $PGDATA: user '$POSTGRES_USER', database '$POSTGRES_DB'"
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options, split on purpose
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host="$AUTH" --pgdata="$PGDATA" ${POSTGRES_INITDB_ARGS:-} > /dev/null
    rm -f "$pwfile"
    printf '\nhost all all all %s\n' "$AUTH" >> "$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
    if [ "$POSTGRES_DB" != postgres ]; then
        # Single-user mode: no server, no socket, nothing listening before the database exists.
        db=$(printf '%s' "$POSTGRES_DB" | sed 's/"/""/g')
        echo "CREATE DATABASE \"$db\";" \
            | postgres --single -j -D "$PGDATA" postgres > /dev/null
    fi
    echo "initialized $PGDATA"
fi

exec postgres -D "$PGDATA" "$@"
