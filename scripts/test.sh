#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test of the workspace against a real
# PostgreSQL, then the contract tests (scripts/schemathesis.sh: schemathesis against
# openapi.yaml). Installs what is missing, builds the binaries, starts a throwaway
# PostgreSQL cluster (`cachectl local postgres`, through scripts/lib/pg.sh) unless
# DATABASE_URL is already set, and removes it again at the end. Exits non-zero on any
# failure.
#
#   bash scripts/test.sh                      # everything
#   bash scripts/test.sh smoke                # extra arguments go to the test runner
#                                             # (filters); the contract tests are skipped
#
# Tests connect with DATABASE_URL and create their own databases (CREATE DATABASE), so
# the role in DATABASE_URL needs CREATEDB.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"

step() { printf '\n==> %s\n' "$*" >&2; }

# Hook: the Python tools the tests need, each in a venv of its own; idempotent and quiet
# when everything is present: schemathesis for the contract tests
# (scripts/schemathesis.sh), and Google's Memorystore client for
# api/tests/google_client.rs, which finds it through CACHEPLANE_GOOGLE_CLIENT_PYTHON.
install_python_test_tools() {
    bash "$ROOT/scripts/schemathesis.sh" install
    CACHEPLANE_GOOGLE_CLIENT_PYTHON=$(bash "$ROOT/scripts/google-client.sh" install)
    export CACHEPLANE_GOOGLE_CLIENT_PYTHON
}

install_prerequisites() {
    command -v cargo >/dev/null 2>&1 || {
        echo "cargo not found: install a Rust toolchain (rustup) first" >&2
        exit 1
    }
    ensure_postgres
    # The end-to-end tests run real engines: redis-server, and redis-cli to check them.
    ensure_pkg redis-server redis-server
    ensure_pkg redis-cli redis-tools
    # The Memcached engine's tests (node-agent/tests/memcached.rs) run real memcached
    # (the package's own service, where systemd starts it, listens on 127.0.0.1:11211
    # only; the tests use other addresses).
    ensure_pkg memcached memcached
    # The netns tests (node-agent/tests/netns.rs): namespaces and bridges (iproute2),
    # the firewall of each network's namespace, and gratuitous ARP on a moved endpoint.
    ensure_pkg ip iproute2
    ensure_pkg nft nftables
    ensure_pkg arping iputils-arping
    # The TLS tests read the certificate a server presents with `openssl s_client`.
    ensure_pkg openssl openssl
    # The Terraform provider's build compiles Terraform's plugin protocol (tonic-build
    # runs protoc; the protocol imports google/protobuf/empty.proto, which
    # libprotobuf-dev ships and apt only recommends).
    ensure_pkg protoc protobuf-compiler
    [[ -f /usr/include/google/protobuf/empty.proto ]] || apt_install libprotobuf-dev
    # Its tests run the real `terraform` CLI, which Debian does not package: without it
    # they fail (never skip), saying so; say it here first.
    command -v terraform >/dev/null 2>&1 ||
        echo "warning: terraform is not on PATH: the terraform-provider-cacheplane tests will fail" >&2
    install_python_test_tools
    # The console's browser test (api/tests/console_browser.rs): Debian's Chromium,
    # driven by playwright-core from console/node_modules (npm ci; no browser download).
    ensure_pkg chromium chromium
    bash "$ROOT/scripts/console.sh" install
}

main() {
    step "prerequisites"
    install_prerequisites

    step "cargo fmt --all -- --check"
    cargo fmt --all -- --check

    # The API embeds console/dist: it must be what its sources build.
    step "console: the committed build is current (scripts/console.sh check)"
    bash "$ROOT/scripts/console.sh" check

    step "cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings

    # The end-to-end tests start the agent binary next to the API's, and the throwaway
    # cluster is cachectl's (`cachectl local postgres`): build them all first.
    step "cargo build --workspace --bins"
    cargo build --workspace --bins

    if [[ -z ${DATABASE_URL:-} ]]; then
        step "throwaway PostgreSQL"
        pg_start_throwaway # stopped and removed by its EXIT trap
    else
        echo "using DATABASE_URL from the environment" >&2
    fi
    export DATABASE_URL
    export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

    if cargo nextest --version >/dev/null 2>&1; then
        step "cargo nextest run --workspace --no-fail-fast $*"
        cargo nextest run --workspace --no-fail-fast "$@"
    else
        step "cargo test --workspace --no-fail-fast $* (cargo-nextest not installed)"
        cargo test --workspace --no-fail-fast "$@"
    fi

    # Contract tests: schemathesis, every check and the stateful phase, against a freshly
    # started API on a database of its own in the same cluster, for one minute (the script
    # alone runs five). Skipped when test filters were given.
    if [[ $# -eq 0 ]]; then
        step "schemathesis: the API against openapi.yaml (scripts/schemathesis.sh, 60 s)"
        SCHEMATHESIS_MAX_TIME=${SCHEMATHESIS_MAX_TIME:-60} bash "$ROOT/scripts/schemathesis.sh"
    else
        echo "skipping schemathesis: test filters given" >&2
    fi
}

main "$@"
