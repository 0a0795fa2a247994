#!/usr/bin/env bash
# deploy/typescript-client.sh: prove that a typed TypeScript client generated from the served
# OpenAPI document drives the API.
#
#   deploy/typescript-client.sh
#
# Installs api/clients/typescript's pinned packages (`npm ci`: openapi-typescript,
# openapi-fetch, TypeScript); builds orderly-api and orderly-migrate (debug); starts (or reuses)
# the PostgreSQL and Redis of deploy/lib/services.sh (or DATABASE_URL / REDIS_URL); migrates a
# database of its own (orderly_typescript_client, recreated each run); makes an admin with
# `orderly-api create-admin`; starts the API on a free loopback port with simulated providers
# (payments authorise at once); generates src/api.d.ts from the served /api/v1/openapi.json with
# openapi-typescript; type-checks the client with `tsc --strict` (skipLibCheck off; no `any`,
# no casts); compiles it to api/clients/typescript/.local/dist and runs it against the API: the
# booking flow (accounts, refresh, listings with filters and pages, a booking with an
# Idempotency-Key and its replay, its payment, its cancellation) and the error cases
# (409 sold_out, 422 validation_failed, 401).
#
# Exits non-zero on any failure (the API's log stays in .local/typescript-client/). If Node.js
# and npm cannot be installed, or npm cannot install the packages (no registry), it says
# SKIPPED and exits 0. Everything it started is stopped at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# shellcheck source=deploy/lib/services.sh
source "$ROOT/deploy/lib/services.sh"

say() { printf 'typescript-client.sh: %s\n' "$*" >&2; }
die() { printf 'typescript-client.sh: error: %s\n' "$*" >&2; exit 1; }

CLIENT=$ROOT/api/clients/typescript
OUT=$ORDERLY_LOCAL_DIR/typescript-client   # this run's API log, kept for a look
DB_NAME=orderly_typescript_client

API_PID=''
ADMIN_URL=''
PREFIX="typescript-client:$$:$(date +%s)"
cleanup() {
    trap '' INT TERM HUP
    if [[ -n $API_PID ]]; then
        kill -TERM "$API_PID" 2>/dev/null || true
        wait "$API_PID" 2>/dev/null || true
    fi
    if [[ -n $ADMIN_URL ]]; then
        psql -X -w -q -At "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    # The run's Redis keys (login counters, idempotency claims), when redis-cli is at hand.
    if [[ -n ${REDIS_URL:-} ]] && command -v redis-cli >/dev/null 2>&1; then
        timeout 10 redis-cli -u "$REDIS_URL" --scan --pattern "*$PREFIX*" 2>/dev/null \
            | xargs -r timeout 10 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
    fi
    orderly_stop_services
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

orderly_require_cargo || exit 1
command -v curl >/dev/null 2>&1 || orderly_install_packages curl || die "curl is needed to wait for the API"

# One run at a time per checkout: the database name and the generated file are fixed.
mkdir -p "$ORDERLY_LOCAL_DIR"
exec 8>"$ORDERLY_LOCAL_DIR/typescript-client.lock"
if ! flock -n 8; then
    say "another deploy/typescript-client.sh is running here; waiting for it"
    flock 8
fi

# Node.js and the npm registry are outside what the API controls: without them the check is
# skipped loudly rather than failed.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    orderly_install_packages nodejs npm || { say "SKIPPED: Node.js and npm cannot be installed"; exit 0; }
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 18)); then
    say "SKIPPED: Node.js $(node --version) is too old (openapi-fetch needs 18 or later for fetch)"
    exit 0
fi
say "installing the client's pinned packages (npm ci)"
if ! (cd "$CLIENT" && npm ci --no-audit --no-fund --loglevel=error </dev/null >&2); then
    say "SKIPPED: npm cannot install api/clients/typescript's packages"
    exit 0
fi
BIN_NODE=$CLIENT/node_modules/.bin

orderly_ensure_postgres || exit 1
orderly_ensure_redis || exit 1

say "building orderly-api and orderly-migrate (debug)"
cargo build -p orderly-api --bin orderly-api -p orderly-migrations --bin orderly-migrate \
    || die "cargo build failed"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $BIN == /* ]] || BIN=$ROOT/$BIN
BIN=$BIN/debug

sql() { PGOPTIONS="-c client_min_messages=warning" PGCONNECT_TIMEOUT=10 psql -X -w -q -At -v ON_ERROR_STOP=1 "$1" -c "$2"; }
ADMIN_URL=$DATABASE_URL
sql "$ADMIN_URL" "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" || die "cannot drop database $DB_NAME"
sql "$ADMIN_URL" "CREATE DATABASE $DB_NAME" || die "cannot create database $DB_NAME (does the DATABASE_URL user have CREATEDB?)"
DATABASE_URL=$(orderly_db_url "$DB_NAME")
export DATABASE_URL
"$BIN/orderly-migrate" up >/dev/null || die "migrations failed on $DB_NAME"

rm -rf "$OUT"
mkdir -p "$OUT/data"
# The API as a new user runs it: simulated payments that authorise at once, SMS to a log, and
# nothing from the caller's environment that would point it at a real provider.
unset STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET STRIPE_API_BASE SMTP_URL SENTRY_DSN TWILIO_ACCOUNT_SID TWILIO_AUTH_TOKEN
export APP_ENV=development SIMULATED_PAYMENTS=authorize SMS_PROVIDER=log DATA_DIR=$OUT/data
export REDIS_PREFIX=$PREFIX API_ADDR=127.0.0.1:0 LOG_FORMAT=json
JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
export JWT_SECRET

ORDERLY_ADMIN_EMAIL=admin@typescript-client.example
ORDERLY_ADMIN_PASSWORD="admin-$(head -c 12 /dev/urandom | base64 | tr -d '\n/+=')"
printf '%s\n' "$ORDERLY_ADMIN_PASSWORD" | "$BIN/orderly-api" create-admin --email "$ORDERLY_ADMIN_EMAIL" --password-stdin >"$OUT/create-admin.log" 2>&1 \
    || { cat "$OUT/create-admin.log" >&2; die "orderly-api create-admin failed"; }

# Port 0: the API takes a free port and logs it.
"$BIN/orderly-api" >"$OUT/api.log" 2>&1 &
API_PID=$!
port=''
for _ in $(seq 1 300); do
    port=$(grep -m1 '"orderly-api listening"' "$OUT/api.log" 2>/dev/null | grep -o '"port":[0-9]*' | cut -d: -f2) || port=''
    [[ -n $port ]] && break
    kill -0 "$API_PID" 2>/dev/null || { tail -n 20 "$OUT/api.log" >&2; die "orderly-api exited at start"; }
    sleep 0.2
done
[[ -n $port ]] || { tail -n 20 "$OUT/api.log" >&2; die "orderly-api did not say which port it listens on within 60 s"; }
BASE=http://127.0.0.1:$port
curl -fsS --max-time 10 "$BASE/ready" >/dev/null || die "the API on $BASE is not ready"
say "the API listens on $BASE (log: $OUT/api.log)"

cd "$CLIENT"
say "generating src/api.d.ts from $BASE/api/v1/openapi.json"
"$BIN_NODE/openapi-typescript" "$BASE/api/v1/openapi.json" -o src/api.d.ts >&2 \
    || die "openapi-typescript could not read the served document"

# The program proves the types, so it may not step around them: no `any`, no `as` or `<T>`
# cast, no non-null assertion (`x!.y`).
escape_casts='\bany\b|\bas +(const|unknown|any|string|number|boolean|object|never|null|undefined|[A-Z{[(])'
escape_angle='(=|\(|,|return) *<[A-Za-z][A-Za-z0-9_.]*>'
escape_bang='[A-Za-z0-9_)]!([.[);,]|$)'
sources=$(find src -name '*.ts' ! -name 'api.d.ts' | sort)
# shellcheck disable=SC2086  # file names without blanks, one per word
escapes=$(grep -nHE "$escape_casts|$escape_angle|$escape_bang" $sources) || escapes=''
[[ -z $escapes ]] || { printf '%s\n' "$escapes" >&2; die "the client steps around its types (any, a cast or a non-null assertion)"; }

say "type-checking the client (tsc --strict, skipLibCheck off)"
"$BIN_NODE/tsc" --strict --noEmit -p tsconfig.json || die "the client does not type-check against the served document"
rm -rf .local/dist
"$BIN_NODE/tsc" -p tsconfig.json || die "tsc could not compile the client"

say "running the booking flow and the error cases against $BASE"
status=0
ORDERLY_API_BASE=$BASE ORDERLY_ADMIN_EMAIL=$ORDERLY_ADMIN_EMAIL ORDERLY_ADMIN_PASSWORD=$ORDERLY_ADMIN_PASSWORD \
    timeout -k 10 120 node .local/dist/main.js </dev/null || status=$?

if grep -q ' panicked at ' "$OUT/api.log"; then
    say "FAILED: a request made the API panic:"
    grep -A 2 ' panicked at ' "$OUT/api.log" | head -n 20 >&2
    ((status)) || status=1
fi
errors=$(grep '"level":"ERROR"' "$OUT/api.log" | grep '"target":"orderly' | tail -n 20) || errors=''
if [[ -n $errors ]]; then
    say "the API logged errors:"
    printf '%s\n' "$errors" >&2
    ((status)) || status=1
fi
case $status in
    0) say "passed: the typed client type-checks against the served document and drives the API" ;;
    124 | 137) say "FAILED: the flow did not finish within 120 s" ;;
    *) say "FAILED (exit status $status); API log in $OUT/api.log" ;;
esac
exit "$status"
