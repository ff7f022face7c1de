#!/usr/bin/env bash
# The benchmark suite (docs/architecture.md#performance-targets): builds the release binaries, starts a throwaway
# PostgreSQL cluster unless DATABASE_URL is set, runs cacheplane-bench against the real
# API binary, prints the table and records it in BENCHMARKS.md.
#
#   bash scripts/bench.sh                          # every benchmark
#   bash scripts/bench.sh --bench alloc            # extra arguments go to cacheplane-bench
#   bash scripts/bench.sh --bench get-latency --no-write
#   bash scripts/bench.sh --bench create-latency,agent-idle   # real agents and redis-server
#   bash scripts/bench.sh --bench failover,throughput         # also redis-benchmark (redis-tools)
#   bash scripts/bench.sh --bench memcached-throughput        # memcached (installed when missing)
#   bash scripts/bench.sh -- --help                # cacheplane-bench's flags
#
# Each benchmark creates and drops a database of its own in the cluster, so the role in
# DATABASE_URL needs CREATEDB. Run it on an otherwise idle machine: client, API server and
# PostgreSQL share the CPUs, as the targets' "on 2 cores" means.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"

step() { printf '\n==> %s\n' "$*" >&2; }

[[ ${1:-} == -- ]] && shift

command -v cargo >/dev/null 2>&1 || {
    echo "cargo not found: install a Rust toolchain (rustup) first" >&2
    exit 1
}

# memcached-throughput runs Debian's memcached.
ensure_pkg memcached memcached

step "cargo build --release -p cacheplane-api -p cacheplane-node-agent -p cacheplane-bench"
cargo build --release -p cacheplane-api -p cacheplane-node-agent -p cacheplane-bench

if [[ -z ${DATABASE_URL:-} ]]; then
    step "throwaway PostgreSQL"
    pg_start_throwaway # stopped and removed by its EXIT trap
else
    echo "using DATABASE_URL from the environment" >&2
fi
export DATABASE_URL

# What BENCHMARKS.md records as the command.
recorded="scripts/bench.sh${*:+ $*}"

step "cacheplane-bench $*"
target/release/cacheplane-bench \
    --api-bin "$ROOT/target/release/cacheplane-api" \
    --agent-bin "$ROOT/target/release/cacheplane-node-agent" \
    --output "$ROOT/BENCHMARKS.md" \
    --command "$recorded" \
    "$@"
