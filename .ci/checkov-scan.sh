#!/usr/bin/env bash
# Scan the Helm chart (rendered by helm with ci/example-values.yaml, which switches the Jobs, the
# object-store Secret and the GPU pool on) and the Dockerfile with checkov. Exit 0 only when no
# check fails; skips are listed in .ci/checkov.yaml and in template annotations, each explained in
# helm/README.md. Extra arguments go to checkov (default --quiet: failures only), e.g. -o json.
# Installs checkov (.ci/checkov.sh) and helm (.ci/helm.sh) on first use.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
checkov="$(bash .ci/checkov.sh)"
helm="$(bash .ci/helm.sh)"
export PATH="$(dirname "$helm"):$PATH"
"$checkov" --config-file .ci/checkov.yaml --framework helm -d helm/geoslide \
    --var-file helm/geoslide/ci/example-values.yaml "${@:---quiet}"
"$checkov" --config-file .ci/checkov.yaml --framework dockerfile -f Dockerfile "${@:---quiet}"
