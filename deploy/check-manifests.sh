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
# kubernetes-validate knows Kubernetes' own kinds only: KEDA's are checked against the
# schemas in deploy/k8s/schemas/keda.json, and each reference (the Deployment a ScaledObject
# scales, the TriggerAuthentication a trigger uses) must name an object of the render. A
# broken copy must fail, so that the check is known to bite.
"$VENV/bin/python" - "$rendered" "$ROOT/deploy/k8s/schemas/keda.json" <<'PY'
import copy, json, sys, yaml
from jsonschema import Draft202012Validator

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
schemas = json.load(open(sys.argv[2]))

def problems(docs):
    found = []
    named = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}
    for d in docs:
        if not d.get("apiVersion", "").startswith("keda.sh/"):
            continue
        where = f'{d["kind"]}/{d["metadata"].get("name")}'
        schema = schemas.get(d["kind"])
        if schema is None:
            found.append(f"{where}: no schema for this KEDA kind")
            continue
        schema = dict(schema, **{"$defs": schemas["$defs"]})
        for e in Draft202012Validator(schema).iter_errors(d):
            found.append(f'{where}: {"/".join(map(str, e.path))}: {e.message}')
        if d["kind"] != "ScaledObject":
            continue
        ns, spec = d["metadata"].get("namespace"), d.get("spec", {})
        target = spec.get("scaleTargetRef", {})
        if (target.get("kind", "Deployment"), ns, target.get("name")) not in named:
            found.append(f'{where}: scales {target.get("name")!r}, not a Deployment of the render')
        if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
            found.append(f"{where}: minReplicaCount above maxReplicaCount")
        for t in spec.get("triggers", []):
            ref = t.get("authenticationRef")
            if ref and (ref.get("kind", "TriggerAuthentication"), ns, ref.get("name")) not in named:
                found.append(f'{where}: trigger uses {ref.get("name")!r}, not a TriggerAuthentication of the render')
    return found

keda = [d for d in docs if d.get("apiVersion", "").startswith("keda.sh/")]
assert keda, "no KEDA objects rendered"
found = problems(docs)
for p in found:
    print(f"check-manifests: {p}", file=sys.stderr)
broken = copy.deepcopy(docs)
scaled = next(d for d in broken if d["kind"] == "ScaledObject")
scaled["spec"]["scaleTargetRef"]["name"] = "no-such-deployment"
scaled["spec"]["maxReplicas"] = 3
if len(problems(broken)) < 2:
    found.append("a broken ScaledObject passed the KEDA check")
    print("check-manifests: a broken ScaledObject passed the KEDA check", file=sys.stderr)
print(f"check-manifests: {len(keda)} KEDA objects checked against deploy/k8s/schemas/keda.json", file=sys.stderr)
sys.exit(1 if found else 0)
PY
say "deploy/k8s/overlays/production: $(grep -c '^kind:' "$rendered") objects rendered and validated"
