#!/usr/bin/env bash
# deploy/openapi-lint.sh: lint the API's OpenAPI document with Redocly's `recommended` rules.
#
#   deploy/openapi-lint.sh [FILE]   lint FILE (JSON or YAML) instead of the API's own document
#
# Builds orderly-api (debug) and prints its document with `orderly-api openapi`, which needs
# no configuration, database or Redis (it is the document /api/v1/openapi.json serves); then
# runs @redocly/cli (npm, pinned, installed under .local/redocly) with deploy/redocly.yaml,
# which extends `recommended` and says why any rule is changed. Exits non-zero on any error;
# warnings are printed and pass. The document linted stays in .local/openapi-lint/. If Node.js
# and npm are missing or the package cannot be installed (no network), it says SKIPPED and
# exits 0, like deploy/schemathesis.sh does for PyPI.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# shellcheck source=deploy/lib/services.sh
source "$ROOT/deploy/lib/services.sh"

say() { printf 'openapi-lint.sh: %s\n' "$*" >&2; }
die() { printf 'openapi-lint.sh: error: %s\n' "$*" >&2; exit 1; }

REDOCLY_VERSION=2.77.0
PREFIX=$ORDERLY_LOCAL_DIR/redocly
REDOCLY=$PREFIX/node_modules/.bin/redocly
OUT=$ORDERLY_LOCAL_DIR/openapi-lint

# @redocly/cli comes from npm; not being able to install it skips the check loudly rather than
# failing on something the document did not cause.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "SKIPPED: Node.js and npm are needed for @redocly/cli $REDOCLY_VERSION"
    exit 0
fi
if [[ $("$REDOCLY" --version 2>/dev/null) != "$REDOCLY_VERSION" ]]; then
    say "installing @redocly/cli $REDOCLY_VERSION into $PREFIX"
    rm -rf "$PREFIX"
    mkdir -p "$PREFIX"
    if ! timeout 600 npm install --prefix "$PREFIX" --save-exact --no-audit --no-fund --loglevel=error \
        "@redocly/cli@$REDOCLY_VERSION" </dev/null >&2; then
        rm -rf "$PREFIX"
        say "SKIPPED: cannot install @redocly/cli $REDOCLY_VERSION from npm"
        exit 0
    fi
fi

mkdir -p "$OUT"
if (($#)); then
    [[ -f $1 ]] || die "no such file: $1"
    DOC=$1
else
    orderly_require_cargo || exit 1
    say "building orderly-api (debug)"
    cargo build -p orderly-api --bin orderly-api || die "cargo build failed"
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ $BIN == /* ]] || BIN=$ROOT/$BIN
    DOC=$OUT/openapi.json
    "$BIN/debug/orderly-api" openapi >"$DOC" || die "orderly-api openapi failed"
fi

say "linting $DOC with @redocly/cli $REDOCLY_VERSION (deploy/redocly.yaml)"
# Telemetry off: a lint gate reports nothing anywhere.
if REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
    "$REDOCLY" lint --config "$ROOT/deploy/redocly.yaml" --format stylish "$DOC"; then
    say "passed: no errors under the recommended rules"
else
    say "FAILED: the document breaks the rules above"
    exit 1
fi
