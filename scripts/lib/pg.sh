# shellcheck shell=bash
#
# Helpers for the scripts (test.sh, dev.sh, schemathesis.sh, bench.sh): install missing
# Debian packages, run cleanups when the shell exits, and run a throwaway PostgreSQL
# cluster. The cluster itself is `cachectl local postgres start|stop` (hidden), the same
# code as `cachectl local up`'s: initdb, pg_ctl, a free port, and, as root, the cluster
# owned and run by the `postgres` user (initdb and pg_ctl refuse root); otherwise it runs
# as the current user. DATABASE_URL names the superuser `postgres`, who may create
# databases (the tests do). This file builds cachectl (target/debug) when it is missing
# or older than its sources, unless CACHEPLANE_CACHECTL_BIN names one.
#
# Source it:
#   source scripts/lib/pg.sh
#   pg_start_throwaway        # initdb + start on a free port, exports DATABASE_URL,
#                             # stops and removes the cluster when the shell exits
#   ensure_pkg redis-server redis-server
#
# Or run it by hand:
#   eval "$(bash scripts/lib/pg.sh start)"   # prints export lines; cluster keeps running
#   psql "$DATABASE_URL" -c 'select 1'
#   bash scripts/lib/pg.sh stop              # uses $CACHEPLANE_PG_DIR
#   bash scripts/lib/pg.sh run -- CMD ARGS   # throwaway cluster around one command

# ---------------------------------------------------------------------------------------
# logging, cleanup stack

pg_log() { printf '[pg] %s\n' "$*" >&2; }
pg_die() {
    printf '[pg] error: %s\n' "$*" >&2
    return 1
}

# Commands run (last registered first) when the shell exits. One EXIT trap runs them all,
# so several helpers can register cleanups without overwriting each other's trap.
_CP_CLEANUPS=()
_cp_run_cleanups() {
    local i
    for ((i = ${#_CP_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${_CP_CLEANUPS[i]}" || true
    done
    _CP_CLEANUPS=()
}
# cp_on_exit 'command string'
cp_on_exit() {
    _CP_CLEANUPS+=("$1")
    trap _cp_run_cleanups EXIT
    # Turn INT/TERM into a normal exit so the EXIT trap runs.
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# ---------------------------------------------------------------------------------------
# packages

# Runs "$@" as root: directly when root, with sudo when available.
_cp_as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        pg_die "need root to run '$*' (not root and no sudo); install it by hand"
    fi
}

_CP_APT_UPDATED=0
# apt_install PKG...: apt-get update (once per shell) and install.
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        pg_die "apt-get not found: install $* by hand" || return 1
    if [[ $_CP_APT_UPDATED -eq 0 ]]; then
        pg_log "apt-get update"
        _cp_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
        _CP_APT_UPDATED=1
    fi
    pg_log "apt-get install -y $*"
    _cp_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >&2
}

# ensure_pkg CMD PKG: install Debian package PKG unless command CMD is already on PATH.
ensure_pkg() {
    local cmd=$1 pkg=${2:-$1}
    command -v "$cmd" >/dev/null 2>&1 && return 0
    pg_log "'$cmd' not found; installing package $pkg"
    apt_install "$pkg" || return 1
    hash -r
    command -v "$cmd" >/dev/null 2>&1 || pg_die "installed $pkg but '$cmd' is still not on PATH"
}

# ---------------------------------------------------------------------------------------
# PostgreSQL binaries

# Prints the directory holding initdb/pg_ctl/postgres, or fails.
# Order: $PG_BINDIR, `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin, PATH.
# ensure_postgres needs it to know whether to install PostgreSQL, and exports the answer
# as PG_BINDIR, which cachectl takes first: both run the same programs.
pg_bindir() {
    local d
    if [[ -n ${PG_BINDIR:-} && -x ${PG_BINDIR}/initdb ]]; then
        printf '%s\n' "$PG_BINDIR"
        return 0
    fi
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    fi
    d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)
    if [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]]; then
        printf '%s\n' "$d"
        return 0
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

# Makes sure the PostgreSQL server binaries (and psql) exist; installs them otherwise.
# Sets PG_BINDIR.
ensure_postgres() {
    local d
    if ! d=$(pg_bindir); then
        pg_log "PostgreSQL server binaries not found; installing package postgresql"
        apt_install postgresql postgresql-contrib || return 1
        d=$(pg_bindir) || pg_die "installed postgresql but cannot find initdb" || return 1
    fi
    PG_BINDIR=$d
    export PG_BINDIR
    if ! command -v psql >/dev/null 2>&1 && [[ ! -x $PG_BINDIR/psql ]]; then
        apt_install postgresql-client || return 1
    fi
}

# ---------------------------------------------------------------------------------------
# ports

# True when something accepts TCP connections on 127.0.0.1:PORT.
pg_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints a port on 127.0.0.1 nobody is listening on (best effort; the caller retries on
# a bind failure). For the other servers the scripts start (schemathesis.sh's API):
# PostgreSQL's port is cachectl's choice.
pg_free_port() {
    local port i
    for ((i = 0; i < 100; i++)); do
        port=$((20000 + RANDOM % 40000))
        if ! pg_port_in_use "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    pg_die "no free port found"
}

# ---------------------------------------------------------------------------------------
# cachectl, which runs the cluster

_CP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# cp_ensure_cachectl: sets CP_CACHECTL to the cachectl binary: $CACHEPLANE_CACHECTL_BIN,
# else target/debug/cachectl, built first when it is missing or older than its sources.
CP_CACHECTL=
cp_ensure_cachectl() {
    if [[ -n ${CACHEPLANE_CACHECTL_BIN:-} ]]; then
        [[ -x $CACHEPLANE_CACHECTL_BIN ]] ||
            pg_die "CACHEPLANE_CACHECTL_BIN=$CACHEPLANE_CACHECTL_BIN is not executable" ||
            return 1
        CP_CACHECTL=$CACHEPLANE_CACHECTL_BIN
        return 0
    fi
    local bin=${CARGO_TARGET_DIR:-$_CP_ROOT/target}/debug/cachectl newer=
    if [[ -x $bin ]]; then
        # What the binary is built from (its tests are not).
        newer=$(find "$_CP_ROOT/cli" "$_CP_ROOT/types" "$_CP_ROOT/Cargo.toml" "$_CP_ROOT/Cargo.lock" \
            -type f -newer "$bin" -not -path '*/tests/*' \
            \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) -print -quit 2>/dev/null || true)
        if [[ -z $newer ]]; then
            CP_CACHECTL=$bin
            return 0
        fi
    fi
    command -v cargo >/dev/null 2>&1 ||
        pg_die "cargo not found: install a Rust toolchain (rustup), or set CACHEPLANE_CACHECTL_BIN" ||
        return 1
    pg_log "cargo build -p cachectl --bin cachectl"
    (cd "$_CP_ROOT" && cargo build -p cachectl --bin cachectl >&2) ||
        pg_die "building cachectl failed" || return 1
    # Cargo leaves an up-to-date binary as it is: mark it as checked against its sources.
    touch "$bin"
    CP_CACHECTL=$bin
}

# ---------------------------------------------------------------------------------------
# the throwaway cluster

# pg_start_throwaway: fresh cluster in a new temp dir on a free port. Exports
# DATABASE_URL (postgres://postgres@127.0.0.1:PORT/postgres), CACHEPLANE_PG_DIR and
# CACHEPLANE_PG_PORT. Pass --no-trap to leave it running after the shell exits (then
# stop it with pg_stop_throwaway DIR). Temp base: $CACHEPLANE_PG_TMPDIR or /tmp (it must
# be reachable by the postgres user when running as root).
pg_start_throwaway() {
    local trap_it=1 dir exports
    if [[ ${1:-} == --no-trap ]]; then
        trap_it=0
    fi
    ensure_postgres || return 1
    cp_ensure_cachectl || return 1
    dir=$(mktemp -d "${CACHEPLANE_PG_TMPDIR:-/tmp}/cacheplane-pg.XXXXXX") || return 1
    if [[ $trap_it -eq 1 ]]; then
        cp_on_exit "pg_stop_throwaway '$dir'"
    fi
    if ! exports=$("$CP_CACHECTL" local postgres start --dir "$dir"); then
        [[ $trap_it -eq 1 ]] || pg_stop_throwaway "$dir"
        pg_die "PostgreSQL failed to start (log: $dir/postgres.log)"
        return 1
    fi
    eval "$exports"
    # The URL holds the cluster's password: logged without it.
    pg_log "PostgreSQL ready at $(sed -E 's#//([^:/@]+):[^@]*@#//\1:***@#' <<<"$DATABASE_URL") (dir $dir)"
}

# pg_stop_throwaway [DIR]: stops the throwaway cluster and removes its directory.
pg_stop_throwaway() {
    local dir=${1:-${CACHEPLANE_PG_DIR:-}}
    [[ -n $dir && -d $dir ]] || return 0
    case $dir in
    */cacheplane-pg.*) ;;
    *)
        pg_die "refusing to remove '$dir': not a throwaway cluster directory"
        return 1
        ;;
    esac
    if [[ -z $CP_CACHECTL ]]; then
        cp_ensure_cachectl || return 1
    fi
    "$CP_CACHECTL" local postgres stop --dir "$dir" --remove || return 1
    if [[ ${CACHEPLANE_PG_DIR:-} == "$dir" ]]; then
        unset CACHEPLANE_PG_DIR CACHEPLANE_PG_PORT DATABASE_URL
    fi
}

# ---------------------------------------------------------------------------------------
# command line (when executed rather than sourced)

_pg_main() {
    set -euo pipefail
    case ${1:-} in
    start)
        pg_start_throwaway --no-trap
        printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
        printf 'export CACHEPLANE_PG_DIR=%q\n' "$CACHEPLANE_PG_DIR"
        printf 'export CACHEPLANE_PG_PORT=%q\n' "$CACHEPLANE_PG_PORT"
        ;;
    stop)
        pg_stop_throwaway "${2:-${CACHEPLANE_PG_DIR:-}}"
        ;;
    run)
        shift
        [[ ${1:-} == -- ]] && shift
        [[ $# -gt 0 ]] || pg_die "usage: pg.sh run -- CMD [ARGS...]"
        pg_start_throwaway
        "$@"
        ;;
    ensure-pkg)
        ensure_pkg "${2:?usage: pg.sh ensure-pkg CMD [PKG]}" "${3:-$2}"
        ;;
    *)
        cat >&2 <<'EOF'
usage: bash scripts/lib/pg.sh start          # throwaway cluster; prints export lines for eval
       bash scripts/lib/pg.sh stop [DIR]     # stop it (default $CACHEPLANE_PG_DIR) and remove it
       bash scripts/lib/pg.sh run -- CMD...  # run CMD with a throwaway cluster, then remove it
       bash scripts/lib/pg.sh ensure-pkg CMD [PKG]
EOF
        return 2
        ;;
    esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    _pg_main "$@"
fi
