#!/usr/bin/env bash
# Brings up the local stack (PostgreSQL + cacheplane-api) and shows it working.
#
#   bash scripts/dev.sh          # start (or reuse) everything, print regions and tiers
#   bash scripts/dev.sh status   # what is running
#   bash scripts/dev.sh stop     # stop the API and PostgreSQL (data is kept)
#
# State lives in ${CACHEPLANE_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/cacheplane}:
#   pg/          the PostgreSQL cluster (initdb once, reused afterwards)
#   admin-token  the API's admin token (generated once, mode 600)
#   api.log      the API's log; api.pid its pid
#
# Settings (environment):
#   CACHEPLANE_DEV_PG_PORT  PostgreSQL port (default 54329)
#   CACHEPLANE_DEV_PG_DIR   PostgreSQL directory (default DATA_DIR/pg; as root, when the
#                           postgres user cannot reach DATA_DIR, /var/lib/cacheplane/pg)
#   CACHEPLANE_LISTEN       API listen address (default 127.0.0.1:8080)
#   CACHEPLANE_API_BIN      use this binary instead of building target/release/cacheplane-api
#
# Running it again reuses what is running; the API is restarted only when its binary
# was rebuilt or the listen address changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"

DATA_DIR=${CACHEPLANE_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/cacheplane}
PG_PORT=${CACHEPLANE_DEV_PG_PORT:-54329}
DB_NAME=cacheplane
LISTEN=${CACHEPLANE_LISTEN:-127.0.0.1:8080}
TOKEN_FILE=$DATA_DIR/admin-token
API_PID_FILE=$DATA_DIR/api.pid
API_LISTEN_FILE=$DATA_DIR/api.listen
API_LOG=$DATA_DIR/api.log
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
API_BIN=${CACHEPLANE_API_BIN:-$TARGET_DIR/release/cacheplane-api}

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'dev.sh: error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------
# PostgreSQL

# Where the cluster lives. As root the cluster belongs to the postgres user, who must be
# able to reach it; $HOME=/root is usually closed to it, so fall back to /var/lib.
resolve_pg_dir() {
    if [[ -n ${CACHEPLANE_DEV_PG_DIR:-} ]]; then
        PG_DIR=$CACHEPLANE_DEV_PG_DIR
        return
    fi
    PG_DIR=$DATA_DIR/pg
    if [[ $(id -u) -eq 0 ]] && ! runuser -u postgres -- test -x "$DATA_DIR" 2>/dev/null; then
        PG_DIR=/var/lib/cacheplane/pg
    fi
}

# Port of the running cluster in PG_DIR (line 4 of postmaster.pid).
running_pg_port() {
    sed -n 4p "$PG_DIR/data/postmaster.pid" 2>/dev/null
}

start_pg() {
    ensure_postgres
    if [[ $PG_DIR != "$DATA_DIR/pg" ]]; then
        say "PostgreSQL directory: $PG_DIR (the postgres user cannot reach $DATA_DIR)"
    fi
    mkdir -p "$(dirname "$PG_DIR")"
    pg_init_cluster "$PG_DIR"
    if pg_cluster_running "$PG_DIR"; then
        local port
        port=$(running_pg_port)
        if [[ -n $port && $port != "$PG_PORT" ]]; then
            say "PostgreSQL already running on port $port (not $PG_PORT); using it"
            PG_PORT=$port
        else
            say "PostgreSQL already running on 127.0.0.1:$PG_PORT"
        fi
    else
        if pg_port_in_use "$PG_PORT"; then
            die "port $PG_PORT is taken by another program; set CACHEPLANE_DEV_PG_PORT"
        fi
        say "starting PostgreSQL on 127.0.0.1:$PG_PORT ($PG_DIR)"
        pg_start_cluster "$PG_DIR" "$PG_PORT" || {
            tail -n 30 "$PG_DIR/postgres.log" >&2 || true
            die "PostgreSQL failed to start (log: $PG_DIR/postgres.log)"
        }
    fi
    local psql=(psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
    if [[ -z $("${psql[@]}" -Atc "select 1 from pg_database where datname = '$DB_NAME'") ]]; then
        say "creating database $DB_NAME"
        "${psql[@]}" -c "create database $DB_NAME"
    fi
    DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/$DB_NAME
}

stop_pg() {
    PG_BINDIR=$(pg_bindir) || return 0
    export PG_BINDIR
    if [[ -d $PG_DIR/data ]] && pg_cluster_running "$PG_DIR"; then
        say "stopping PostgreSQL ($PG_DIR)"
        pg_stop_cluster "$PG_DIR"
    else
        say "PostgreSQL is not running"
    fi
}

# ---------------------------------------------------------------------------------------
# the API

api_url() {
    local host=${LISTEN%:*} port=${LISTEN##*:}
    case $host in
    0.0.0.0 | '' | '[::]' | '::') host=127.0.0.1 ;;
    esac
    printf 'http://%s:%s\n' "$host" "$port"
}

# Pid of the API we started, if it is still running.
api_pid() {
    local pid
    [[ -f $API_PID_FILE ]] || return 1
    pid=$(<"$API_PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    grep -q cacheplane-api "/proc/$pid/cmdline" 2>/dev/null || [[ ! -d /proc ]] || return 1
    printf '%s\n' "$pid"
}

ensure_token() {
    if [[ ! -s $TOKEN_FILE ]]; then
        say "generating the admin token ($TOKEN_FILE)"
        (
            umask 077
            od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE"
        )
    fi
    chmod 600 "$TOKEN_FILE"
}

build_api() {
    if [[ -n ${CACHEPLANE_API_BIN:-} ]]; then
        [[ -x $API_BIN ]] || die "CACHEPLANE_API_BIN=$API_BIN is not executable"
        return
    fi
    say "cargo build --release -p cacheplane-api"
    (cd "$ROOT" && cargo build --release -p cacheplane-api)
}

stop_api() {
    local pid i
    if ! pid=$(api_pid); then
        rm -f "$API_PID_FILE"
        return 1
    fi
    say "stopping cacheplane-api (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "cacheplane-api did not exit after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$API_PID_FILE"
}

start_api() {
    local pid url
    url=$(api_url)
    if pid=$(api_pid); then
        if [[ $API_BIN -nt $API_PID_FILE ]]; then
            say "cacheplane-api was rebuilt; restarting it"
            stop_api || true
        elif [[ $(cat "$API_LISTEN_FILE" 2>/dev/null) != "$LISTEN" ]]; then
            say "listen address changed; restarting cacheplane-api"
            stop_api || true
        else
            say "cacheplane-api already running (pid $pid) at $url"
            return 0
        fi
    fi
    local port=${LISTEN##*:}
    if pg_port_in_use "$port"; then
        die "port $port is taken by another program; set CACHEPLANE_LISTEN (e.g. 127.0.0.1:8081)"
    fi
    say "starting cacheplane-api on $LISTEN (log: $API_LOG)"
    local detach=()
    if command -v setsid >/dev/null 2>&1; then
        detach=(setsid)
    else
        detach=(nohup)
    fi
    # The token goes through the environment, not argv, so `ps` does not show it.
    DATABASE_URL=$DATABASE_URL \
        CACHEPLANE_LISTEN=$LISTEN \
        CACHEPLANE_ADMIN_TOKEN=$(<"$TOKEN_FILE") \
        RUST_LOG=${RUST_LOG:-info} \
        "${detach[@]}" "$API_BIN" >>"$API_LOG" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$API_PID_FILE"
    printf '%s\n' "$LISTEN" >"$API_LISTEN_FILE"
}

wait_ready() {
    local url=$1 i pid
    for ((i = 0; i < 600; i++)); do
        if curl -fsS -o /dev/null --max-time 2 "$url/readyz" 2>/dev/null; then
            return 0
        fi
        if ! pid=$(api_pid); then
            tail -n 40 "$API_LOG" >&2 || true
            die "cacheplane-api exited during start-up (log: $API_LOG)"
        fi
        sleep 0.1
    done
    tail -n 40 "$API_LOG" >&2 || true
    die "cacheplane-api not ready after 60 s (log: $API_LOG)"
}

# show PATH: GET it with the admin token and pretty-print the JSON.
show() {
    local url=$1 path=$2 body
    # shellcheck disable=SC2016 # the $(cat ...) is shown to the user, not run
    printf '\n$ curl -H "Authorization: Bearer $(cat %s)" %s%s\n' "$TOKEN_FILE" "$url" "$path"
    # The header goes through curl's config on stdin so the token stays out of argv.
    body=$(printf 'header = "Authorization: Bearer %s"\n' "$(<"$TOKEN_FILE")" |
        curl -sS --fail-with-body --max-time 10 -K - "$url$path") || {
        printf '%s\n' "$body"
        die "GET $path failed"
    }
    if command -v jq >/dev/null 2>&1; then
        printf '%s\n' "$body" | jq .
    elif command -v python3 >/dev/null 2>&1; then
        printf '%s\n' "$body" | python3 -m json.tool
    else
        printf '%s\n' "$body"
    fi
}

# ---------------------------------------------------------------------------------------
# commands

cmd_start() {
    ensure_pkg curl curl
    start_pg
    ensure_token
    build_api
    start_api
    local url
    url=$(api_url)
    wait_ready "$url"
    show "$url" /v1/regions
    show "$url" /v1/tiers
    cat <<EOF

Cacheplane is up.
  API          $url   (log: $API_LOG)
  admin token  $TOKEN_FILE
  PostgreSQL   $DATABASE_URL   (data: $PG_DIR)

  curl -H "Authorization: Bearer \$(cat $TOKEN_FILE)" $url/v1/regions
  bash scripts/dev.sh stop     # stop the API and PostgreSQL (data is kept)
EOF
}

cmd_stop() {
    stop_api || say "cacheplane-api is not running"
    stop_pg
}

cmd_status() {
    local pid
    if pid=$(api_pid); then
        echo "cacheplane-api: running (pid $pid) at $(api_url); log $API_LOG"
    else
        echo "cacheplane-api: not running"
    fi
    if PG_BINDIR=$(pg_bindir) && [[ -d $PG_DIR/data ]] && pg_cluster_running "$PG_DIR"; then
        echo "PostgreSQL: running on 127.0.0.1:$(running_pg_port) ($PG_DIR)"
    else
        echo "PostgreSQL: not running ($PG_DIR)"
    fi
}

make_data_dir() {
    mkdir -p "$DATA_DIR"
    # As root the postgres user must be able to pass through to DATA_DIR/pg; the files
    # that matter (admin-token) are mode 600 themselves.
    if [[ $(id -u) -eq 0 ]]; then
        chmod 711 "$DATA_DIR"
    else
        chmod 700 "$DATA_DIR"
    fi
}

case ${1:-start} in
start | up) make_data_dir ;;
esac
resolve_pg_dir
case ${1:-start} in
start | up) cmd_start ;;
stop | down) cmd_stop ;;
status) cmd_status ;;
-h | --help | help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown command '$1' (start, stop, status)" ;;
esac
