#!/usr/bin/env bash
# Install checkov (PyPI) into its own venv, <repo>/tools/checkov-venv, and print the path of its
# executable. checkov pins many libraries (boto3, networkx, pydantic, ...) that may clash with
# geoslide's, so it never goes into the project's venv. Idempotent: an existing install of the
# pinned version is kept. Env override: PYTHON (default python3).
set -euo pipefail

CHECKOV_VERSION="3.3.30"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/tools/checkov-venv"
exe="${venv}/bin/checkov"
py="${PYTHON:-python3}"

if [[ -x "$exe" ]] && "${venv}/bin/python" -m pip show checkov 2>/dev/null | grep -qx "Version: ${CHECKOV_VERSION}"; then
    echo "$exe"
    exit 0
fi
"$py" -m venv "$venv"
"${venv}/bin/python" -m pip install --quiet --upgrade pip >&2
"${venv}/bin/python" -m pip install --quiet "checkov==${CHECKOV_VERSION}" >&2
"$exe" --version >&2
echo "$exe"
