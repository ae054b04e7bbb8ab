#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests (Debian's postgresql-15 package).
#
#   eval "$(tests/postgres.sh start)"   # starts one, prints the exports below
#   ... python -m pytest tests/core/test_store.py ...
#   tests/postgres.sh stop              # stops it and deletes its data dir
#
# start prints: export R2ROUTER_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
#               export R2ROUTER_TEST_POSTGRES_DIR=/tmp/r2router-pg.XXXX
# The server listens on 127.0.0.1 only, on a free port, with trust auth for 127.0.0.1
# only; its data dir is a temp dir under /tmp. As root it runs as the postgres user.
set -euo pipefail

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
    if [ ! -x "$PG_BIN/initdb" ]; then
        echo "no PostgreSQL at $PG_BIN: apt-get install postgresql-15 (or set PG_BIN)" >&2
        exit 1
    fi
    dir="$(mktemp -d /tmp/r2router-pg.XXXXXX)"
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=reject --no-sync >"$dir/initdb.log" 2>&1
    printf 'host all all 127.0.0.1/32 trust\n' >"$dir/hba.conf"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir/hba.conf"; fi
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c hba_file=$dir/hba.conf -c fsync=off" >/dev/null
    echo "export R2ROUTER_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
    echo "export R2ROUTER_TEST_POSTGRES_DIR=$dir"
    ;;
stop)
    dir="${2:-${R2ROUTER_TEST_POSTGRES_DIR:-}}"
    if [ -z "$dir" ] || [ ! -d "$dir/data" ]; then
        echo "nothing to stop (give the dir or set R2ROUTER_TEST_POSTGRES_DIR)" >&2
        exit 0
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: tests/postgres.sh start|stop [DIR]" >&2
    exit 2
    ;;
esac
