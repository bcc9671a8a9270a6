#!/usr/bin/env bash
# Install what tests/test_stac_pgstac.py needs for a second real STAC API (stac-fastapi-pgstac,
# which implements the query and filter extensions): PostgreSQL 15 + PostGIS 3 from Debian 12,
# and a separate server venv <repo>/tools/pgstac-venv (a test dependency only; kept apart from
# .venv so it can never move geoslide's own pins such as pystac or pydantic).
#
# Idempotent: apt runs only if a package is missing, the venv is (re)built only if the pinned
# versions are not already there. Non-interactive; run as root (or with the packages already
# installed). Env overrides: PYTHON (default python3) for the venv's interpreter.
set -euo pipefail

APT_PACKAGES=(postgresql-15 postgresql-15-postgis-3)
PIP_PINS=("stac-fastapi-pgstac==7.2.0" "pypgstac[psycopg]==0.10.0" "uvicorn==0.54.0")

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/tools/pgstac-venv"
py="${PYTHON:-python3}"
export DEBIAN_FRONTEND=noninteractive

# --- Debian packages --------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    if [[ "$(id -u)" != 0 ]]; then
        echo "pgstac.sh: missing Debian packages ${missing[*]} and not root; install them with apt-get" >&2
        exit 1
    fi
    echo "pgstac.sh: apt-get install ${missing[*]}"
    apt-get update -qq
    # (Debian's postgresql-common creates a default cluster on install; the tests never use it,
    # they initdb their own in a temp dir.)
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "pgstac.sh: Debian packages present: ${APT_PACKAGES[*]}"
fi
for tool in initdb pg_ctl postgres; do
    [[ -x "/usr/lib/postgresql/15/bin/${tool}" ]] || { echo "pgstac.sh: /usr/lib/postgresql/15/bin/${tool} missing" >&2; exit 1; }
done
[[ -f /usr/share/postgresql/15/extension/postgis.control ]] || { echo "pgstac.sh: postgis extension missing" >&2; exit 1; }

# --- server venv --------------------------------------------------------------------------------
pins_ok() {
    [[ -x "${venv}/bin/python" ]] || return 1
    "${venv}/bin/python" - "${PIP_PINS[@]}" <<'PYEOF'
import re, sys
from importlib.metadata import PackageNotFoundError, version
for pin in sys.argv[1:]:
    name, want = re.sub(r"\[.*\]", "", pin).split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
import psycopg, stac_fastapi.pgstac.app, uvicorn  # noqa: E401,F401  (imports work, binary libpq found)
PYEOF
}
# (the server warns on import when its title/description are unset)
export STAC_FASTAPI_TITLE=pgstac.sh STAC_FASTAPI_DESCRIPTION=- STAC_FASTAPI_LANDING_ID=- STAC_FASTAPI_VERSION=-

pip_quiet() {  # pip with its log kept aside (this machine's pip.conf adds noisy local indexes); tail on failure
    local log
    log="$(mktemp)"
    if ! "${venv}/bin/python" -m pip install --quiet "$@" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

if pins_ok; then
    echo "pgstac.sh: ${venv} has ${PIP_PINS[*]}"
else
    echo "pgstac.sh: building ${venv} with ${PIP_PINS[*]}"
    command -v "$py" >/dev/null 2>&1 || { echo "pgstac.sh: $py not found" >&2; exit 1; }
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv"
    pip_quiet --upgrade pip
    pip_quiet "${PIP_PINS[@]}"
    pins_ok || { echo "pgstac.sh: ${venv} does not import the server after install" >&2; exit 1; }
fi
"${venv}/bin/python" -m pip list --format=freeze 2>/dev/null \
    | grep -iE '^(stac-fastapi-pgstac|stac-fastapi-api|pypgstac|psycopg|psycopg-binary|asyncpg|uvicorn|fastapi|pydantic)==' \
    | sed 's/^/pgstac.sh:   /'
echo "pgstac.sh: postgres $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}'), postgis $(dpkg-query -W -f='${Version}' postgresql-15-postgis-3)"
