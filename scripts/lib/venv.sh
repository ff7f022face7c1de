# shellcheck shell=bash
#
# Python venvs of the test tools, each pinned by a requirements file and rebuilt when
# that file changes. Needs scripts/lib/pg.sh sourced first (ensure_pkg, apt_install).
#
#   source scripts/lib/pg.sh
#   source scripts/lib/venv.sh
#   cp_ensure_venv target/x-venv scripts/requirements-x.txt x   # x: a program of the venv

# cp_ensure_venv VENV REQUIREMENTS PROGRAM: creates (or re-creates) VENV with exactly
# REQUIREMENTS unless VENV/bin/PROGRAM exists and the venv was made from this very file.
# Quiet when the venv is current; progress goes to stderr.
cp_ensure_venv() {
    local venv=$1 requirements=$2 program=$3 want stamp
    stamp=$venv/.requirements.sha256
    want=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [[ -x $venv/bin/$program && -f $stamp && $(<"$stamp") == "$want" ]]; then
        return 0
    fi
    ensure_pkg python3 python3
    printf '[venv] creating %s\n' "$venv" >&2
    rm -rf -- "$venv"
    mkdir -p "$(dirname "$venv")"
    # Debian ships the venv module (ensurepip) separately, in python3-venv.
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        rm -rf -- "$venv"
        printf '[venv] python3 -m venv failed; installing python3-venv\n' >&2
        apt_install python3-venv
        python3 -m venv "$venv"
    fi
    printf '[venv] pip install -r %s\n' "$requirements" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$requirements" >&2
    printf '%s\n' "$want" >"$stamp"
}
