#!/usr/bin/env bash
# Brings up the local stack with `cachectl local up` (PostgreSQL, cacheplane-api, three
# node agents) and shows it doing its job: `cachectl local demo` makes sure of a
# STANDARD_HA cache `demo` with two replicas and prints the redis-cli line that reaches
# it, which this script runs to show PONG.
#
#   bash scripts/dev.sh          # install what is missing, build, start (or reuse) the
#                                # stack, create `demo` unless it exists, ping it
#   bash scripts/dev.sh status   # cachectl local status
#   bash scripts/dev.sh stop     # cachectl local down: the agents, their redis-servers,
#                                # the API and PostgreSQL
#
# cachectl keeps the stack in ${XDG_DATA_HOME:-$HOME/.local/share}/cacheplane (logs, pid
# files, the admin token, PostgreSQL's cluster; `cachectl local up --help` says where
# each is) and points its configuration file at it. `cachectl local demo` adds demo-auth
# there: the demo's AUTH string (mode 600), which the printed redis-cli line reads.
#
# Settings (environment), read by `cachectl local up` (the directories by `local demo` too):
#   CACHECTL_LOCAL_DIR        the stack's data directory
#   CACHECTL_LOCAL_PG_PORT    PostgreSQL's port (default 54329)
#   CACHECTL_LOCAL_API_PORT   the API's port (default 8080)
#   CACHECTL_LOCAL_API_REPLICAS  how many API processes (default 1), on consecutive
#                             ports; the agents and cachectl fail over between them
#   CACHECTL_LOCAL_PG_DIR     PostgreSQL's directory (default DATA_DIR/pg; as root, when
#                             the postgres user cannot reach DATA_DIR, /var/lib/cacheplane/pg)
#
# Running it again reuses what runs; the API or an agent is restarted only when its
# binary was rebuilt. The redis-servers keep no data on disk, so `stop` empties the
# caches; on the next start `demo` recovers by itself (its replicas restart and one is
# promoted), and `cachectl local demo` replaces it if it cannot.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CACHECTL=$TARGET_DIR/release/cachectl

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
    # The agents offer Memcached instances when memcached is installed (README).
    ensure_pkg memcached memcached
}

build() {
    # The API embeds console/dist (committed); rebuild it first when its sources changed.
    if bash "$ROOT/scripts/console.sh" stale; then
        bash "$ROOT/scripts/console.sh" build || die "building the console failed"
    fi
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

cmd_start() {
    install_prerequisites
    build
    show local up

    # `local demo` shows the instance, its last line being the redis-cli command that
    # pings it: show the rest, then that line, then run it.
    local out ping
    printf '\n$ cachectl local demo\n'
    out=$(cachectl local demo)
    ping=${out##*$'\n'}
    printf '%s' "${out%"$ping"}"
    printf '$ %s\n' "$ping"
    eval "$ping" || die "redis-cli could not reach the demo instance"

    cat <<EOF

Cacheplane is up, and cachectl is set up for it (\`cachectl config list\`).
  Web console: http://127.0.0.1:${CACHECTL_LOCAL_API_PORT:-8080}/console/ (sign in with the admin token:
    cat ${CACHECTL_LOCAL_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/cacheplane}/admin-token)
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
