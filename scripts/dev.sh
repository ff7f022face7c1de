#!/usr/bin/env bash
# Brings up the local stack with `cachectl local up` (PostgreSQL, cacheplane-api, three
# node agents) and shows it doing its job: a STANDARD_HA cache `demo` with two replicas,
# answering PING through the redis-cli line it prints.
#
#   bash scripts/dev.sh          # install what is missing, build, start (or reuse) the
#                                # stack, create `demo` unless it exists, ping it
#   bash scripts/dev.sh status   # cachectl local status
#   bash scripts/dev.sh stop     # cachectl local down: the agents, their redis-servers,
#                                # the API and PostgreSQL
#
# cachectl keeps the stack in ${XDG_DATA_HOME:-$HOME/.local/share}/cacheplane (logs, pid
# files, the admin token, PostgreSQL's cluster; `cachectl local up --help` says where
# each is) and points its configuration file at it. This script adds demo-auth there:
# the demo's AUTH string (mode 600), which the printed redis-cli line reads.
#
# Settings (environment), read by `cachectl local up`:
#   CACHECTL_LOCAL_DIR        the stack's data directory
#   CACHECTL_LOCAL_PG_PORT    PostgreSQL's port (default 54329)
#   CACHECTL_LOCAL_API_PORT   the API's port (default 8080)
#   CACHECTL_LOCAL_PG_DIR     PostgreSQL's directory (default DATA_DIR/pg; as root, when
#                             the postgres user cannot reach DATA_DIR, /var/lib/cacheplane/pg)
#
# Running it again reuses what runs; the API or an agent is restarted only when its
# binary was rebuilt. The redis-servers keep no data on disk, so `stop` empties the
# caches; on the next start `demo` recovers by itself (its replicas restart and one is
# promoted), and is replaced if it cannot.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CACHECTL=$TARGET_DIR/release/cachectl

# The demo instance, in project demo-project and region local whatever cachectl's
# configuration says.
DEMO=demo
SCOPE=(--project demo-project --region local)

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'dev.sh: error: %s\n' "$*" >&2
    exit 1
}

# cachectl ARGS...: the cachectl this script built.
cachectl() { "$CACHECTL" "$@"; }

# show ARGS...: prints the cachectl command line, then runs it.
show() {
    printf '\n$ cachectl %s\n' "$*"
    cachectl "$@"
}

install_prerequisites() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup) first"
    ensure_postgres
    ensure_pkg redis-server redis-server
    ensure_pkg redis-cli redis-tools
    ensure_pkg jq jq
}

build() {
    say "cargo build --release -p cacheplane-api -p cacheplane-node-agent -p cachectl"
    (cd "$ROOT" && cargo build --release -p cacheplane-api -p cacheplane-node-agent -p cachectl) ||
        die "cargo build failed"
}

# Builds cachectl alone if it is missing (for stop and status).
ensure_cachectl() {
    if [[ ! -x $CACHECTL ]]; then
        say "cargo build --release -p cachectl"
        (cd "$ROOT" && cargo build --release -p cachectl) || die "cargo build failed"
    fi
}

demo_exists() {
    cachectl instances list "${SCOPE[@]}" --format json |
        jq -e --arg id "$DEMO" 'any(.[]; .name | endswith("/instances/" + $id))' >/dev/null
}

# Waits (60 s) for the existing demo and all its nodes to be READY. Fails at once when it
# cannot get there by itself: FAILED, or its primary down for 10 s with no failover.
wait_demo_ready() {
    local i json state stuck=0
    for ((i = 0; i < 60; i++)); do
        json=$(cachectl instances describe "$DEMO" "${SCOPE[@]}" --format json)
        state=$(jq -r .state <<<"$json")
        if jq -e '.state == "READY" and all(.nodes[]; .state == "READY")' <<<"$json" >/dev/null; then
            return 0
        fi
        [[ $state != FAILED ]] || return 1
        if [[ $state != CREATING && $state != FAILING_OVER ]] &&
            jq -e 'any(.nodes[]; .role == "PRIMARY" and .state != "READY" and .state != "CREATING")' \
                <<<"$json" >/dev/null; then
            stuck=$((stuck + 1))
            ((stuck < 10)) || return 1
        else
            stuck=0
        fi
        sleep 1
    done
    die "instance $DEMO is still $state after 60 s: $(jq -r .statusMessage <<<"$json")"
}

create_demo() {
    say "creating instance $DEMO (STANDARD_HA, 1 GB, 2 replicas) in project demo-project, region local"
    printf '\n$ cachectl instances create %s --tier standard-ha --size 1 --replica-count 2 %s\n' \
        "$DEMO" "${SCOPE[*]}"
    cachectl instances create "$DEMO" --tier standard-ha --size 1 --replica-count 2 \
        "${SCOPE[@]}" >/dev/null
}

ensure_demo() {
    if ! demo_exists; then
        create_demo
    elif wait_demo_ready; then
        say "instance $DEMO already exists and is READY"
    else
        say "instance $DEMO cannot recover by itself (its caches were stopped); replacing it"
        printf '\n$ cachectl instances delete %s --quiet %s\n' "$DEMO" "${SCOPE[*]}"
        cachectl instances delete "$DEMO" --quiet "${SCOPE[@]}" >/dev/null
        create_demo
    fi
}

cmd_start() {
    install_prerequisites
    build
    show local up
    local data_dir
    data_dir=$(cachectl local status --format json | jq -r .dataDir)

    ensure_demo
    show instances describe "$DEMO" "${SCOPE[@]}"

    # The AUTH string goes to a file only its owner can read, and to redis-cli through
    # the environment, never a command line.
    local auth_file=$data_dir/demo-auth json host port
    (
        umask 077
        cachectl instances get-auth-string "$DEMO" "${SCOPE[@]}" --format json |
            jq -r .authString >"$auth_file"
    )
    chmod 600 "$auth_file"
    json=$(cachectl instances describe "$DEMO" "${SCOPE[@]}" --format json)
    host=$(jq -r .host <<<"$json")
    port=$(jq -r .port <<<"$json")

    # shellcheck disable=SC2016 # the $(cat ...) is printed for the user, not run here
    printf '\n$ REDISCLI_AUTH=$(cat %q) redis-cli -h %s -p %s ping\n' "$auth_file" "$host" "$port"
    REDISCLI_AUTH=$(<"$auth_file") redis-cli -h "$host" -p "$port" ping ||
        die "redis-cli could not reach $host:$port"

    cat <<EOF

Cacheplane is up, and cachectl is set up for it (\`cachectl config list\`).
  export PATH="$TARGET_DIR/release:\$PATH"   # to type \`cachectl\`
  cachectl instances list --project demo-project
  cachectl --help
  bash scripts/dev.sh status   # cachectl local status
  bash scripts/dev.sh stop     # cachectl local down
EOF
}

case ${1:-start} in
start | up) cmd_start ;;
stop | down)
    ensure_cachectl
    cachectl local down
    ;;
status)
    ensure_cachectl
    cachectl local status
    ;;
-h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
*) die "unknown command '$1' (start, stop, status)" ;;
esac
