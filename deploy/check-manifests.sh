#!/usr/bin/env bash
# deploy/check-manifests.sh: check the deployment files offline.
#   - deploy/k8s/overlays/production rendered with kustomize (kubectl kustomize), every
#     object validated against the Kubernetes schemas bundled by the PyPI package
#     kubernetes-validate (strict: unknown fields are errors; KEDA's CRDs have no bundled
#     schema and are only parsed);
#   - deploy/compose.yaml parsed, each service checked for an image or a build and a command.
# A tool that cannot be had here (no kubectl) is reported as skipped; a file that fails a
# check fails the script.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VENV=${ORDERLY_LOCAL_DIR:-$ROOT/.local}/check-venv
say() { printf 'check-manifests: %s\n' "$*" >&2; }

# shellcheck source=deploy/lib/services.sh
source "$ROOT/deploy/lib/services.sh"
# The tools come from Debian and PyPI; not being able to install them (no root, no network)
# skips the check loudly rather than failing on something the files did not cause.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    orderly_install_packages python3 python3-venv || { say "SKIPPED: python3 with venv cannot be installed"; exit 0; }
fi
if [[ ! -x $VENV/bin/kubernetes-validate ]]; then
    if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q kubernetes-validate==1.37.0 pyyaml; }; then
        rm -rf "$VENV"
        say "SKIPPED: cannot install kubernetes-validate from PyPI"; exit 0
    fi
fi

"$VENV/bin/python" - "$ROOT/deploy/compose.yaml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
services = doc.get("services") or {}
assert services, "no services"
for name, svc in services.items():
    assert "image" in svc or "build" in svc, f"{name}: no image or build"
    for dep in (svc.get("depends_on") or {}):
        assert dep in services, f"{name}: depends on unknown service {dep}"
print(f"check-manifests: compose.yaml: {len(services)} services parsed", file=sys.stderr)
PY

if ! command -v kubectl >/dev/null 2>&1; then
    say "skipped the Kubernetes manifests: kubectl (for kustomize) is not installed"
    exit 0
fi
rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
kubectl kustomize "$ROOT/deploy/k8s/overlays/production" >"$rendered"
"$VENV/bin/kubernetes-validate" --strict --quiet "$rendered"
say "deploy/k8s/overlays/production: $(grep -c '^kind:' "$rendered") objects rendered and validated"
