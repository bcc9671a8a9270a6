#!/usr/bin/env bash
# Install Debian's nginx-light for the tests that read COG assets over HTTP range requests from a
# real web server on loopback (tests/servers.py starts its own nginx with a private config; the
# service the package may start is stopped). Idempotent; needs root when the package is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [[ "$(dpkg-query -W -f='${Status}' nginx-light 2>/dev/null || true)" != "install ok installed" ]]; then
    if [[ "$(id -u)" != 0 ]]; then
        echo "nginx.sh: nginx-light is missing and this is not root; install it with apt-get" >&2
        exit 1
    fi
    echo "nginx.sh: apt-get install nginx-light"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
    nginx -s stop 2>/dev/null || true
else
    echo "nginx.sh: nginx-light present"
fi
