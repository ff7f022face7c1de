#!/usr/bin/env bash
# The Python venv of the Google client test (api/tests/google_client.rs, which runs
# api/tests/google_client/client_test.py): Google's published Memorystore client,
# google-cloud-redis, pinned with its dependencies in
# scripts/requirements-google-client.txt, in target/google-client-venv (rebuilt when that
# file changes). scripts/test.sh runs `install` and exports the path it prints as
# CACHEPLANE_GOOGLE_CLIENT_PYTHON, which the test needs.
#
#   bash scripts/google-client.sh install    # create or update the venv; prints its python
#
# To run the test alone:
#   export CACHEPLANE_GOOGLE_CLIENT_PYTHON=$(bash scripts/google-client.sh install)
#   cargo nextest run -p cacheplane-api --test google_client
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"
# shellcheck source=scripts/lib/venv.sh
source "$ROOT/scripts/lib/venv.sh"

VENV=${CARGO_TARGET_DIR:-$ROOT/target}/google-client-venv

case ${1:-install} in
install)
    # Only the path goes to stdout: the caller captures it.
    cp_ensure_venv "$VENV" "$ROOT/scripts/requirements-google-client.txt" python >&2
    printf '%s\n' "$VENV/bin/python"
    ;;
*)
    printf '[google-client] error: unknown command %s (install)\n' "$1" >&2
    exit 1
    ;;
esac
