#!/usr/bin/env bash
# Contract tests of the API: schemathesis generates requests from openapi.yaml, sends them
# to a freshly started cacheplane-api on a fresh database, and checks that no answer is a
# server error (5xx) and that every answer matches the document (status, content type,
# body schema). Exits non-zero on any failure.
#
#   bash scripts/schemathesis.sh            # set up, run, tear down
#   bash scripts/schemathesis.sh install    # only create or update the venv (quiet when current)
#
# What it does:
#   1. a venv with the pinned schemathesis (scripts/requirements-schemathesis.txt) in
#      target/schemathesis-venv, rebuilt when that file changes;
#   2. a database of its own (cp_schemathesis_<random>) in the DATABASE_URL cluster; with
#      no DATABASE_URL it starts a throwaway cluster (scripts/lib/pg.sh) around the run;
#   3. cacheplane-api on a free port: target/debug/cacheplane-api, built with cargo when
#      missing or older than the sources;
#   4. seed data over HTTP (a project with a network and an instance, a host, tokens), so
#      the generated requests reach existing resources and not only 404s;
#   5. `schemathesis run openapi.yaml` with the admin token; then stops the API and drops
#      the database.
#
# Settings (environment):
#   DATABASE_URL                cluster to create the test database in (role needs CREATEDB)
#   CACHEPLANE_API_BIN          test this binary instead of target/debug/cacheplane-api
#   SCHEMATHESIS_MAX_EXAMPLES   generated cases per operation and phase (default 25)
#   SCHEMATHESIS_SEED           seed of the generator (default 20261123)
#   SCHEMATHESIS_WORKERS        concurrent workers (default 2)
#   SCHEMATHESIS_ARGS           further arguments for `schemathesis run`, e.g.
#                               "--include-operation-id get_instance" or "--phases fuzzing"
#   CACHEPLANE_TEST_KEEP_DB     keep the test database afterwards
#
# Output (kept after the run): target/schemathesis/ holds api.log, the generated
# schemathesis.toml and junit.xml.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET_DIR/schemathesis-venv
REQUIREMENTS=$ROOT/scripts/requirements-schemathesis.txt
OUT_DIR=$TARGET_DIR/schemathesis
API_LOG=$OUT_DIR/api.log
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
SEED=${SCHEMATHESIS_SEED:-20261123}
WORKERS=${SCHEMATHESIS_WORKERS:-2}

say() { printf '[schemathesis] %s\n' "$*" >&2; }
die() {
    printf '[schemathesis] error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------
# the venv

# Creates (or re-creates) the venv unless it already holds exactly REQUIREMENTS.
ensure_venv() {
    local want stamp=$VENV/.requirements.sha256
    want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
    if [[ -x $VENV/bin/schemathesis && -f $stamp && $(<"$stamp") == "$want" ]]; then
        return 0
    fi
    ensure_pkg python3 python3
    say "creating the venv $VENV"
    rm -rf -- "$VENV"
    mkdir -p "$(dirname "$VENV")"
    # Debian ships the venv module (ensurepip) separately, in python3-venv.
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf -- "$VENV"
        say "python3 -m venv failed; installing python3-venv"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
    say "pip install -r ${REQUIREMENTS#"$ROOT"/}"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$REQUIREMENTS"
    printf '%s\n' "$want" >"$stamp"
}

# ---------------------------------------------------------------------------------------
# PostgreSQL

PSQL=()
ensure_psql() {
    local bindir
    if command -v psql >/dev/null 2>&1; then
        PSQL=(psql)
    elif bindir=$(pg_bindir) && [[ -x $bindir/psql ]]; then
        PSQL=("$bindir/psql")
    else
        apt_install postgresql-client
        hash -r
        PSQL=(psql)
    fi
    PSQL+=(-X -q -v ON_ERROR_STOP=1)
}

# DATABASE_URL with its database replaced by $1.
url_with_database() {
    python3 - "$DATABASE_URL" "$1" <<'PY'
import sys
import urllib.parse as u

parts = u.urlsplit(sys.argv[1])
print(u.urlunsplit(parts._replace(path="/" + sys.argv[2])))
PY
}

TEST_DB=
create_database() {
    TEST_DB=cp_schemathesis_$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')
    "${PSQL[@]}" -d "$DATABASE_URL" -c "create database \"$TEST_DB\"" >/dev/null
    cp_on_exit drop_database
    TEST_DB_URL=$(url_with_database "$TEST_DB")
    say "database $TEST_DB"
}

drop_database() {
    [[ -n $TEST_DB ]] || return 0
    if [[ -n ${CACHEPLANE_TEST_KEEP_DB:-} ]]; then
        say "keeping database $TEST_DB ($TEST_DB_URL)"
        return 0
    fi
    "${PSQL[@]}" -d "$DATABASE_URL" \
        -c "drop database if exists \"$TEST_DB\" with (force)" >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------------------------------
# the API

# Sets API_BIN: CACHEPLANE_API_BIN, or the debug binary, built when missing or stale.
ensure_api_bin() {
    if [[ -n ${CACHEPLANE_API_BIN:-} ]]; then
        API_BIN=$CACHEPLANE_API_BIN
        [[ -x $API_BIN ]] || die "CACHEPLANE_API_BIN=$API_BIN is not executable"
        return 0
    fi
    API_BIN=$TARGET_DIR/debug/cacheplane-api
    local newer=
    if [[ -x $API_BIN ]]; then
        newer=$(find "$ROOT/api" "$ROOT/types" "$ROOT/migrations" "$ROOT/Cargo.toml" \
            "$ROOT/Cargo.lock" -type f -newer "$API_BIN" -not -path "$ROOT/api/tests/*" \
            -print -quit 2>/dev/null || true)
        [[ -z $newer ]] && return 0
    fi
    say "cargo build -p cacheplane-api --bin cacheplane-api"
    cargo build -p cacheplane-api --bin cacheplane-api
}

API_PID=
start_api() {
    local port attempt i
    ADMIN_TOKEN=cp_schemathesis_$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    mkdir -p "$OUT_DIR"
    : >"$API_LOG"
    for ((attempt = 1; attempt <= 5; attempt++)); do
        port=$(pg_free_port)
        API_URL=http://127.0.0.1:$port
        say "starting $API_BIN on 127.0.0.1:$port (log ${API_LOG#"$ROOT"/})"
        # Only the flags below configure it; the token goes through the environment so
        # that `ps` does not show it. A short --max-wait bounds the long-polls
        # (host config, operation wait) that generated requests may start.
        env -u CACHEPLANE_LISTEN -u CACHEPLANE_DEFAULT_NETWORK_SUPERNET \
            -u CACHEPLANE_HOST_TIMEOUT -u CACHEPLANE_WORKER_INTERVAL -u CACHEPLANE_DB_POOL \
            -u CACHEPLANE_LOG_FORMAT -u DATABASE_URL \
            CACHEPLANE_ADMIN_TOKEN="$ADMIN_TOKEN" RUST_LOG="${RUST_LOG:-info}" \
            RUST_BACKTRACE=1 \
            "$API_BIN" --database-url "$TEST_DB_URL" --listen "127.0.0.1:$port" \
            --max-wait 2s >>"$API_LOG" 2>&1 </dev/null &
        API_PID=$!
        for ((i = 0; i < 600; i++)); do
            if curl -fsS -o /dev/null --max-time 2 "$API_URL/readyz" 2>/dev/null; then
                return 0
            fi
            kill -0 "$API_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$API_PID" 2>/dev/null; then
            tail -n 40 "$API_LOG" >&2 || true
            die "cacheplane-api not ready after 60 s (log: $API_LOG)"
        fi
        wait "$API_PID" 2>/dev/null || true
        API_PID=
        if grep -qi 'address already in use' "$API_LOG"; then
            say "port $port taken; retrying ($attempt/5)"
            continue
        fi
        tail -n 40 "$API_LOG" >&2 || true
        die "cacheplane-api exited during start-up (log: $API_LOG)"
    done
    die "cacheplane-api could not get a port after 5 attempts"
}

stop_api() {
    [[ -n $API_PID ]] || return 0
    local i
    kill -TERM "$API_PID" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$API_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$API_PID" 2>/dev/null; then
        say "cacheplane-api did not exit after SIGTERM; sending SIGKILL"
        kill -KILL "$API_PID" 2>/dev/null || true
    fi
    wait "$API_PID" 2>/dev/null || true
    API_PID=
}

# call METHOD PATH [JSON]: one request with the admin token; prints the body, fails
# unless the answer is 2xx. The token goes through curl's config on stdin, not argv.
call() {
    local method=$1 path=$2 body=${3:-} out
    local args=(-sS --max-time 20 --fail-with-body -X "$method" -K -)
    if [[ -n $body ]]; then
        args+=(-H 'Content-Type: application/json' --data-binary "$body")
    fi
    if ! out=$(printf 'header = "Authorization: Bearer %s"\n' "$ADMIN_TOKEN" |
        curl "${args[@]}" "$API_URL$path"); then
        printf '%s\n' "$out" >&2
        die "seeding: $method $path failed"
    fi
    printf '%s\n' "$out"
}

# json_get FIELD: reads JSON on stdin and prints the (dotted) field.
json_get() {
    python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[key]
print(value)' "$1"
}

# Creates what the generated requests can find. Ids start with `st-` so that they are
# recognisable in the API log.
seed() {
    local out
    PROJECT=st-demo
    REGION=local
    HOST=st-host-a
    NETWORK=st-net
    INSTANCE=st-cache

    out=$(call POST /v1/tokens "{\"project\": \"$PROJECT\", \"description\": \"schemathesis\"}")
    PROJECT_TOKEN_ID=$(json_get name <<<"$out")
    PROJECT_TOKEN_ID=${PROJECT_TOKEN_ID#tokens/}
    out=$(call POST /v1/tokens "{\"host\": \"$HOST\", \"description\": \"schemathesis\"}")
    HOST_TOKEN_ID=$(json_get name <<<"$out")
    HOST_TOKEN_ID=${HOST_TOKEN_ID#tokens/}

    call PUT "/v1/hosts/$HOST" \
        '{"zone": "local-a", "address": "127.0.0.1", "memoryBytes": 17179869184, "engines": ["REDIS_7_0"]}' \
        >/dev/null
    call POST "/v1/hosts/$HOST/heartbeat" '{"appliedGeneration": 0, "nodes": []}' >/dev/null

    call POST "/v1/projects/$PROJECT/networks?networkId=$NETWORK" \
        '{"ipRange": "127.32.0.0/24", "description": "schemathesis"}' >/dev/null

    out=$(call POST "/v1/projects/$PROJECT/locations/$REGION/instances?instanceId=$INSTANCE" \
        '{"tier": "BASIC", "memorySizeGb": 1, "displayName": "schemathesis", "labels": {"env": "test"}}')
    OPERATION_ID=$(json_get name <<<"$out")
    OPERATION_ID=${OPERATION_ID##*/}

    # The create is answered at once; check that the reads see it.
    call GET "/v1/projects/$PROJECT/locations/$REGION/instances/$INSTANCE" >/dev/null
    call GET "/v1/projects/$PROJECT/locations/$REGION/operations/$OPERATION_ID" >/dev/null
    say "seeded project $PROJECT (network $NETWORK, instance $INSTANCE, operation $OPERATION_ID), host $HOST"
}

# ---------------------------------------------------------------------------------------
# schemathesis

# The config: path parameters draw from the seeded ids most of the time (the rest stays
# generated, which tests the not-found paths); the admin token on every request.
write_config() {
    CONFIG=$OUT_DIR/schemathesis.toml
    cat >"$CONFIG" <<EOF
# Generated by scripts/schemathesis.sh for one run; edits are overwritten.
headers = { Authorization = "Bearer \${CP_SCHEMATHESIS_TOKEN}" }

[generation]
# The generator's example database would make runs depend on earlier ones.
database = "none"

[dictionaries]
project = { values = ["$PROJECT"] }
region = { values = ["$REGION", "-"] }
instance = { values = ["$INSTANCE"] }
operation = { values = ["$OPERATION_ID"] }
network = { values = ["default", "$NETWORK"] }
host = { values = ["$HOST"] }
token = { values = ["$PROJECT_TOKEN_ID", "$HOST_TOKEN_ID"] }

[parameters]
"path.project" = { dictionary = "project", probability = 0.8 }
"path.region" = { dictionary = "region", probability = 0.8 }
"path.instance" = { dictionary = "instance", probability = 0.8 }
"path.operation" = { dictionary = "operation", probability = 0.8 }
"path.network" = { dictionary = "network", probability = 0.8 }
"path.host" = { dictionary = "host", probability = 0.8 }
"path.token" = { dictionary = "token", probability = 0.5 }
EOF
}

run_schemathesis() {
    local extra=() rc started
    if [[ -n ${SCHEMATHESIS_ARGS:-} ]]; then
        read -r -a extra <<<"$SCHEMATHESIS_ARGS"
    fi
    local cmd=(
        "$VENV/bin/schemathesis" --config-file "$CONFIG" run "$ROOT/openapi.yaml"
        --url "$API_URL"
        --checks not_a_server_error,response_schema_conformance,content_type_conformance
        --max-examples "$MAX_EXAMPLES"
        --seed "$SEED"
        --workers "$WORKERS"
        --request-timeout 10
        --no-color
        --report junit --report-junit-path "$OUT_DIR/junit.xml"
        "${extra[@]}"
    )
    say "${cmd[*]#"$ROOT"/}"
    started=$SECONDS
    rc=0
    CP_SCHEMATHESIS_TOKEN=$ADMIN_TOKEN "${cmd[@]}" || rc=$?
    say "schemathesis finished in $((SECONDS - started)) s with exit code $rc"
    if grep -q 'ERROR\|panicked' "$API_LOG"; then
        say "the API logged errors (${API_LOG#"$ROOT"/}):"
        grep 'ERROR\|panicked' "$API_LOG" | tail -n 20 >&2
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------------------

main() {
    case ${1:-run} in
    install)
        ensure_venv
        return 0
        ;;
    run) ;;
    -h | --help | help)
        sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'
        return 0
        ;;
    *) die "unknown command '$1' (run, install)" ;;
    esac

    ensure_pkg curl curl
    ensure_venv
    if [[ -z ${DATABASE_URL:-} ]]; then
        say "DATABASE_URL is not set; starting a throwaway PostgreSQL"
        pg_start_throwaway # removed by its EXIT trap
    fi
    ensure_psql
    ensure_api_bin
    create_database
    cp_on_exit stop_api # registered last, so it runs before the database is dropped
    start_api
    seed
    write_config
    run_schemathesis
}

main "$@"
