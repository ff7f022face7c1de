#!/usr/bin/env bash
# The web console's front end (console/): its npm dependencies and its build. The
# built files, console/dist/, are committed and embedded in cacheplane-api (see
# docs/console.md), so `cargo build` needs no npm; this script keeps them current.
#
#   bash scripts/console.sh install   # npm ci in console/ (the pinned package-lock.json)
#   bash scripts/console.sh build     # install, then type-check and build into console/dist
#   bash scripts/console.sh check     # install, build into a temporary directory and fail
#                                     # when console/dist differs from it (stale build)
#   bash scripts/console.sh stale     # exit 0 when a source is newer than console/dist
#
# node and npm come from Debian's nodejs and npm packages when missing (ensure_pkg).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONSOLE=$ROOT/console
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"

say() { printf '[console] %s\n' "$*" >&2; }

ensure_node() {
    ensure_pkg node nodejs
    ensure_pkg npm npm
}

# npm ci unless node_modules already matches package-lock.json.
install() {
    ensure_node
    local stamp=$CONSOLE/node_modules/.package-lock.json
    if [[ -f $stamp && ! $CONSOLE/package-lock.json -nt $stamp ]]; then
        return 0
    fi
    say "npm ci"
    (cd "$CONSOLE" && npm ci --no-audit --no-fund --loglevel=error)
}

build() {
    install
    say "npm run build (console/dist)"
    (cd "$CONSOLE" && npm run --silent build)
}

check() {
    install
    local out
    out=$(mktemp -d)
    trap 'rm -rf "$out"' RETURN
    (cd "$CONSOLE" && npx --no-install tsc --noEmit && npx --no-install vite build --logLevel error --outDir "$out" --emptyOutDir)
    if ! diff -r "$CONSOLE/dist" "$out" >/dev/null; then
        diff -r "$CONSOLE/dist" "$out" | head -20 >&2 || true
        say "console/dist is stale: run 'bash scripts/console.sh build' and commit console/dist"
        return 1
    fi
    say "console/dist matches its sources"
}

stale() {
    local built=$CONSOLE/dist/index.html
    [[ ! -f $built ]] && return 0
    [[ -n $(find "$CONSOLE/src" "$CONSOLE/index.html" "$CONSOLE/package-lock.json" "$CONSOLE/vite.config.ts" -newer "$built" -print -quit) ]]
}

case ${1:-} in
install) install ;;
build) build ;;
check) check ;;
stale) stale ;;
*)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
    ;;
esac
