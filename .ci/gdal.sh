#!/usr/bin/env bash
# Install Debian 12's gdal-bin (GDAL 3.6) so that tests/mapping/test_map_gdal.py checks that the
# oldest GDAL in common use (and the QGIS builds on it) opens a `--zarr-format 2` map store.
# Idempotent; needs root when the package is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v gdalinfo >/dev/null; then
    if [[ "$(id -u)" != 0 ]]; then
        echo "gdal.sh: gdal-bin is missing and this is not root; install it with apt-get" >&2
        exit 1
    fi
    echo "gdal.sh: apt-get install gdal-bin"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends gdal-bin >/dev/null
else
    echo "gdal.sh: $(gdalinfo --version)"
fi
