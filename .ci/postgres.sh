#!/usr/bin/env bash
# A throwaway local PostgreSQL server for the distributed-tuning tests and benchmarks.
#
#   .ci/postgres.sh start DIR   installs PostgreSQL (Debian package) when missing, starts a server with its
#                               data in DIR on a free loopback port, prints its Optuna/SQLAlchemy URL
#                               (postgresql://postgres@127.0.0.1:PORT/postgres, the psycopg driver) and writes it to DIR/url
#   .ci/postgres.sh stop DIR    stops that server (the data stays in DIR)
#
# PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as the `postgres` user the package
# creates, on a data directory that user owns. Authentication is `trust` and the server listens on
# 127.0.0.1 only. Messages go to stderr; stdout carries the URL alone.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi

find_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/pg_ctl" ]]; then echo "$d"; return 0; fi
    done
    return 1
}

as_pg() {  # run a command as the server's owner
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    if ! bin=$(find_bin); then
        if [[ $(id -u) -ne 0 ]]; then
            echo "postgres.sh: PostgreSQL is not installed and installing it needs root (apt-get install postgresql)" >&2
            exit 3
        fi
        echo "postgres.sh: installing PostgreSQL (apt-get install postgresql)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        # policy-rc.d exit 101: the package does not start its own cluster on port 5432 (we run our own);
        # a policy-rc.d that is already there is left alone
        made_policy=0
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
        fi
        apt-get install -y -qq postgresql >&2 || { [[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d; exit 3; }
        if [[ $made_policy == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
        bin=$(find_bin)
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres "$dir"
        chmod 755 "$dir"
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 4; }
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=200 -c fsync=off" start >&2 \
        || { cat "$dir/server.log" >&2; exit 5; }
    url="postgresql://postgres@127.0.0.1:$port/postgres"
    echo "$url" > "$dir/url"
    echo "$url"
    ;;
stop)
    if bin=$(find_bin) && [[ -f "$dir/data/postmaster.pid" ]]; then
        as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
