#!/usr/bin/env bash
# Contract tests of the API: schemathesis generates requests from openapi.yaml, sends them
# to a freshly started cacheplane-api on a fresh database, and runs every check
# schemathesis has, its stateful phase (which follows the document's links) included: no
# server error, every answer as the document says (status, content type, body, Allow),
# every schema-valid request accepted and every schema-violating one refused, a created
# resource found. Exits non-zero on any failure.
#
#   bash scripts/schemathesis.sh            # set up, run for 5 minutes, tear down
#   SCHEMATHESIS_MAX_TIME=60 bash scripts/schemathesis.sh   # the test command's run
#   bash scripts/schemathesis.sh install    # only create or update the venv (quiet when current)
#
# What it does:
#   1. a venv with the pinned schemathesis (scripts/requirements-schemathesis.txt) in
#      target/schemathesis-venv, rebuilt when that file changes;
#   2. a database of its own (cp_schemathesis_<random>) in the DATABASE_URL cluster; with
#      no DATABASE_URL it starts a throwaway cluster (scripts/lib/pg.sh) around the run;
#   3. cacheplane-api on a free port: target/debug/cacheplane-api, built with cargo when
#      missing or older than the sources;
#   4. seed data over HTTP, the node agents' part played by the test kit's fake agent
#      (target/debug/cacheplane-fake-agent): a project with a second network, three
#      hosts, a READY BASIC and a READY STANDARD_HA instance, tokens; the generated
#      requests draw ids from them (dictionaries in the generated config) so
#      they reach existing resources and not only 404s;
#   5. `schemathesis run openapi.yaml` with the admin token; then stops the API and drops
#      the database.
#
# Settings (environment):
#   DATABASE_URL                cluster to create the test database in (role needs CREATEDB)
#   CACHEPLANE_API_BIN          test this binary instead of target/debug/cacheplane-api
#   SCHEMATHESIS_MAX_EXAMPLES   generated cases per operation and phase (default 100)
#   SCHEMATHESIS_SEED           seed of the generator (default 20261123)
#   SCHEMATHESIS_MAX_TIME       time budget in seconds (default 300): the fuzzing and
#                               stateful phases repeat until it is spent
#   SCHEMATHESIS_CHECKS         checks to run (default \`all\`)
#   SCHEMATHESIS_WORKERS        concurrent workers (default 1: then the same seed sends the
#                               same requests in the same order)
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
# shellcheck source=scripts/lib/venv.sh
source "$ROOT/scripts/lib/venv.sh"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET_DIR/schemathesis-venv
REQUIREMENTS=$ROOT/scripts/requirements-schemathesis.txt
OUT_DIR=$TARGET_DIR/schemathesis
API_LOG=$OUT_DIR/api.log
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-100}
MAX_TIME=${SCHEMATHESIS_MAX_TIME:-300}
SEED=${SCHEMATHESIS_SEED:-20261123}
WORKERS=${SCHEMATHESIS_WORKERS:-1}

say() { printf '[schemathesis] %s\n' "$*" >&2; }
die() {
    printf '[schemathesis] error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------
# the venv

# Creates (or re-creates) the venv unless it already holds exactly REQUIREMENTS.
ensure_venv() {
    cp_ensure_venv "$VENV" "$REQUIREMENTS" schemathesis
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
        # What the binary is built from (the integration tests are not).
        newer=$(find "$ROOT/api" "$ROOT/types" "$ROOT/migrations" "$ROOT/Cargo.toml" \
            "$ROOT/Cargo.lock" -type f -newer "$API_BIN" -not -path "$ROOT/api/tests/*" \
            \( -name '*.rs' -o -name '*.sql' -o -name Cargo.toml -o -name Cargo.lock \) \
            -print -quit 2>/dev/null || true)
        [[ -z $newer ]] && return 0
    fi
    say "cargo build -p cacheplane-api --bin cacheplane-api"
    cargo build -p cacheplane-api --bin cacheplane-api
}

# Sets FAKE_AGENT_BIN: the test kit's fake node agent (scripts/test.sh builds it with every
# other binary), built with cargo when missing or older than its sources.
ensure_fake_agent_bin() {
    FAKE_AGENT_BIN=$TARGET_DIR/debug/cacheplane-fake-agent
    local newer=
    if [[ -x $FAKE_AGENT_BIN ]]; then
        newer=$(find "$ROOT/testkit" "$ROOT/types" "$ROOT/Cargo.lock" -type f \
            -newer "$FAKE_AGENT_BIN" \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) \
            -print -quit 2>/dev/null || true)
        [[ -z $newer ]] && return 0
    fi
    say "cargo build -p cacheplane-testkit --bin cacheplane-fake-agent"
    cargo build -p cacheplane-testkit --bin cacheplane-fake-agent
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
        # that `ps` does not show it. A short --max-wait bounds the long-polls (host
        # config, operation wait) that generated requests may start; a long
        # --host-timeout keeps the seeded hosts UP without agents heartbeating.
        env -u CACHEPLANE_LISTEN -u CACHEPLANE_DEFAULT_NETWORK_SUPERNET \
            -u CACHEPLANE_HOST_TIMEOUT -u CACHEPLANE_WORKER_INTERVAL -u CACHEPLANE_DB_POOL \
            -u CACHEPLANE_LOG_FORMAT \
            DATABASE_URL="$TEST_DB_URL" CACHEPLANE_ADMIN_TOKEN="$ADMIN_TOKEN" \
            RUST_LOG="${RUST_LOG:-info}" RUST_BACKTRACE=1 \
            "$API_BIN" --listen "127.0.0.1:$port" \
            --max-wait 2s --host-timeout 30m >>"$API_LOG" 2>&1 </dev/null &
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

# name_of JSON: the last segment of the answer's `name` (tokens/ID, …/operations/ID).
name_of() {
    local name
    name=$(json_get name <<<"$1")
    printf '%s\n' "${name##*/}"
}

# wait_done OPERATION_ID: plays the node agents of the seeded hosts (the Rust fake agent
# of the test kit: fetch the config, report every node up in its role, replicas linked)
# until the operation is done, and fails if it failed.
wait_done() {
    local hosts=() host
    for host in "${HOSTS[@]}"; do
        hosts+=(--host "$host")
    done
    CACHEPLANE_AGENT_TOKEN=$ADMIN_TOKEN "$FAKE_AGENT_BIN" --api-url "$API_URL" "${hosts[@]}" \
        --until-done "projects/$PROJECT/locations/$REGION/operations/$1" ||
        die "seeding: operation $1 failed or is not done"
}

# Creates what the generated requests can find: a project with a second network, three
# hosts (one per zone) and two READY instances, a BASIC one and a STANDARD_HA one with
# read replicas; the agents' part is played by the fake agent (wait_done). Ids start with `st-` so that
# they are recognisable in the API log.
seed() {
    local out host zone op_basic op_ha
    PROJECT=st-demo
    REGION=local
    NETWORK=st-net
    HOSTS=(st-host-a st-host-b st-host-c)
    INSTANCES=(st-cache st-ha)

    out=$(call POST /v1/tokens "{\"project\": \"$PROJECT\", \"description\": \"schemathesis\"}")
    PROJECT_TOKEN_ID=$(name_of "$out")
    out=$(call POST /v1/tokens "{\"host\": \"${HOSTS[0]}\", \"description\": \"schemathesis\"}")
    HOST_TOKEN_ID=$(name_of "$out")

    for host in "${HOSTS[@]}"; do
        zone=local-${host##*-}
        call PUT "/v1/hosts/$host" "{\"zone\": \"$zone\", \"address\": \"127.0.0.1\", \"memoryBytes\": 17179869184, \"engines\": [\"REDIS_6_X\", \"REDIS_7_0\", \"REDIS_7_2\"]}" >/dev/null
    done

    call POST "/v1/projects/$PROJECT/networks?networkId=$NETWORK" \
        '{"ipRange": "10.32.0.0/24", "description": "schemathesis"}' >/dev/null

    out=$(call POST "/v1/projects/$PROJECT/locations/$REGION/instances?instanceId=${INSTANCES[0]}" \
        '{"tier": "BASIC", "memorySizeGb": 1, "displayName": "schemathesis basic", "labels": {"env": "test"}, "authEnabled": false}')
    op_basic=$(name_of "$out")
    out=$(call POST "/v1/projects/$PROJECT/locations/$REGION/instances?instanceId=${INSTANCES[1]}" \
        "{\"tier\": \"STANDARD_HA\", \"memorySizeGb\": 1, \"replicaCount\": 2, \"readReplicasMode\": \"READ_REPLICAS_ENABLED\", \"authorizedNetwork\": \"$NETWORK\", \"redisVersion\": \"REDIS_7_2\", \"redisConfigs\": {\"maxmemory-policy\": \"allkeys-lru\"}, \"labels\": {\"env\": \"test\", \"tier\": \"ha\"}}")
    op_ha=$(name_of "$out")
    OPERATIONS=("$op_basic" "$op_ha")
    wait_done "$op_basic"
    wait_done "$op_ha"
    say "seeded project $PROJECT: network $NETWORK, READY instances ${INSTANCES[*]}; hosts ${HOSTS[*]}"
}

# ---------------------------------------------------------------------------------------
# schemathesis

# base64url without padding, as page tokens are.
b64url() {
    printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='
}

# The config: the admin token on every request, and dictionaries for what openapi.yaml
# cannot state because it depends on stored data: the ids of seeded resources (so that
# requests reach existing ones, not only 404s), zones of the region, networks of the
# project, and page tokens, which only a previous list call hands out. Positive cases
# draw those from the dictionaries (probability 1: any other value is rightly refused);
# everything else is generated from the document's rules, which tests the rejections.
write_config() {
    CONFIG=$OUT_DIR/schemathesis.toml
    local op_token
    op_token=$(call GET "/v1/projects/$PROJECT/locations/$REGION/operations?pageSize=1" |
        json_get nextPageToken)
    cat >"$CONFIG" <<EOF
# Generated by scripts/schemathesis.sh for one run; edits are overwritten.
headers = { Authorization = "Bearer \${CP_SCHEMATHESIS_TOKEN}" }

[generation]
# The generator's example database would make runs depend on earlier ones.
database = "none"

[dictionaries]
# Seeded resources.
project = { values = ["$PROJECT"] }
region = { values = ["$REGION"] }
any-region = { values = ["$REGION", "-"] }
instance = { values = ["${INSTANCES[0]}", "${INSTANCES[1]}"] }
operation = { values = ["${OPERATIONS[0]}", "${OPERATIONS[1]}"] }
network = { values = ["default", "$NETWORK"] }
host = { values = ["${HOSTS[0]}", "${HOSTS[1]}", "${HOSTS[2]}"] }
token = { values = ["$PROJECT_TOKEN_ID", "$HOST_TOKEN_ID"] }
# Well-formed query values.
new-instance-id = { values = ["st-new-a", "st-new-b", "st-new-c", "st-new-d"] }
new-network-id = { values = ["st-net-b", "st-net-c"] }
request-id = { values = ["6f1d3c3e-9d8a-4c43-9a51-0f5b8f0c2a11", "0b6c8f5e-2f6a-4d0b-8d0e-5c1a9e7b3d22"] }
generation = { values = [0, 1, 2] }
page-size = { values = [1, 2, 1000] }
filter = { values = ["state=READY", "labels.env=test", "state=CREATING AND labels.env=test"] }
# Page tokens as a previous page hands them out.
instance-page = { values = ["$(b64url "$REGION/${INSTANCES[0]}")"] }
connector-page = { values = ["$(b64url "$REGION/st-conn")"] }
operation-page = { values = ["$op_token"] }
# Stored data the bodies refer to.
tier = { values = ["BASIC", "STANDARD_HA"] }
memory-gb = { values = [1, 2] }
zone = { values = ["local-a", "local-b", "local-c"] }
primary-zone = { values = ["local-a"] }
replica-zone = { values = ["local-b", "local-c"] }
authorized-network = { values = ["default", "$NETWORK", "projects/$PROJECT/networks/$NETWORK"] }
ip-range = { values = ["10.33.0.0/24", "10.34.0.0/28"] }

[parameters]
"path.project" = { dictionary = "project", probability = 0.8 }
"path.region" = { dictionary = "region", probability = 0.8 }
"path.instance" = { dictionary = "instance", probability = 0.8 }
"path.operation" = { dictionary = "operation", probability = 0.8 }
"path.network" = { dictionary = "network", probability = 0.8 }
"path.host" = { dictionary = "host", probability = 0.8 }
"path.tokenId" = { dictionary = "token", probability = 0.5 }
"query.instanceId" = { dictionary = "new-instance-id", probability = 0.7 }
"query.networkId" = { dictionary = "new-network-id", probability = 0.7 }
"query.requestId" = { dictionary = "request-id", probability = 0.2 }
"query.generation" = { dictionary = "generation", probability = 0.5 }
"query.pageSize" = { dictionary = "page-size", probability = 0.5 }
"query.filter" = { dictionary = "filter", probability = 0.5 }
"body.tier" = { dictionary = "tier", probability = 0.8 }
"body.memorySizeGb" = { dictionary = "memory-gb", probability = 0.8 }
"body.zone" = { dictionary = "zone", probability = 1.0 }
"body.locationId" = { dictionary = "primary-zone", probability = 1.0 }
"body.alternativeLocationId" = { dictionary = "replica-zone", probability = 1.0 }
"body.authorizedNetwork" = { dictionary = "authorized-network", probability = 1.0 }
"body.network" = { dictionary = "authorized-network", probability = 1.0 }
"body.ipRange" = { dictionary = "ip-range", probability = 1.0 }

# The lists also take region \`-\` (all regions); each list's page token is its own.
[[operations]]
include-operation-id = ["list_instances"]
parameters = { "path.region" = { dictionary = "any-region", probability = 0.8 }, "query.pageToken" = { dictionary = "instance-page", probability = 1.0 } }

[[operations]]
include-operation-id = ["list_operations"]
parameters = { "path.region" = { dictionary = "any-region", probability = 0.8 }, "query.pageToken" = { dictionary = "operation-page", probability = 1.0 } }

[[operations]]
include-operation-id = ["list_memcache_instances"]
parameters = { "path.region" = { dictionary = "any-region", probability = 0.8 }, "query.pageToken" = { dictionary = "instance-page", probability = 1.0 } }

[[operations]]
include-operation-id = ["list_connectors"]
parameters = { "query.pageToken" = { dictionary = "connector-page", probability = 1.0 } }

# Rules no OpenAPI document can state, so a valid-looking request may rightly be refused
# with 400 (docs/architecture.md#the-document-as-a-contract): a create's
# redisConfigs.maxmemory-gb is bounded by its memorySizeGb; a patch's body must hold the
# fields its updateMask names, and its replicas and read replicas follow the stored
# instance's tier; a Memcached instance's zones must be its region's, and a parameter
# such as max-item-size is bounded by the node's memory. For these a 400 is an expected
# answer to a schema-valid request; every other check still runs on them.
#
# The agent's heartbeat, for another reason: in the stateful phase schemathesis 4.32.5
# sends fractional numbers for its integer fields as valid data (2251799813685247.2 for
# nodes[].restarts, seen in every 5-minute run), which the server rightly refuses.
[[operations]]
include-operation-id = ["create_instance", "patch_instance", "create_memcache_instance", "patch_memcache_instance", "update_parameters", "apply_parameters", "heartbeat"]
checks = { positive_data_acceptance = { expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"] } }
EOF
}

run_schemathesis() {
    local extra=() rc started
    if [[ -n ${SCHEMATHESIS_ARGS:-} ]]; then
        read -r -a extra <<<"$SCHEMATHESIS_ARGS"
    fi
    local checks=${SCHEMATHESIS_CHECKS:-all}
    local cmd=(
        "$VENV/bin/schemathesis" --config-file "$CONFIG" run "$ROOT/openapi.yaml"
        --url "$API_URL"
        --checks "$checks"
        --max-examples "$MAX_EXAMPLES"
        --max-time "$MAX_TIME"
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
    rm -f "$OUT_DIR/junit.xml"
    CP_SCHEMATHESIS_TOKEN=$ADMIN_TOKEN "${cmd[@]}" || rc=$?
    say "schemathesis finished in $((SECONDS - started)) s with exit code $rc"
    if grep -q 'ERROR\|panicked' "$API_LOG"; then
        say "the API logged errors (${API_LOG#"$ROOT"/}):"
        grep 'ERROR\|panicked' "$API_LOG" | tail -n 20 >&2
    fi
    # A plain closing line; each API operation (and the stateful phase) counts as one test.
    if [[ -s $OUT_DIR/junit.xml ]]; then
        python3 - "$OUT_DIR/junit.xml" <<'PY' || true
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
count = lambda key: int(root.get(key, 0))
failed = count("failures") + count("errors")
passed = count("tests") - failed - count("skipped")
print(f"schemathesis: {passed} passed, {failed} failed, {count('skipped')} skipped")
PY
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
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
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
    ensure_fake_agent_bin
    create_database
    cp_on_exit stop_api # registered last, so it runs before the database is dropped
    start_api
    seed
    write_config
    run_schemathesis
}

main "$@"
