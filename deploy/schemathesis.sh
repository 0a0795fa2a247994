#!/usr/bin/env bash
# deploy/schemathesis.sh: hold the running API to its own OpenAPI document with schemathesis.
#
#   deploy/schemathesis.sh [ST_RUN_ARGS...]   extra arguments go to `st run`
#
# Builds orderly-api and orderly-migrate (debug); starts (or reuses) the private PostgreSQL and
# Redis of deploy/lib/services.sh (or DATABASE_URL / REDIS_URL); migrates a database of its own
# (orderly_schemathesis, recreated each run); starts the API on a free loopback port with
# simulated providers (no Stripe, SMS to a log); seeds through the API a customer, a provider,
# a listing and a booking, and an admin with `orderly-api create-admin`; then runs schemathesis
# (PyPI, pinned, in a venv under .local/) against the served /api/v1/openapi.json with these
# checks: no 5xx, every status code documented, content types and bodies as documented, and no
# unresolvable reference. Admin operations and listings run as the admin, bookings as the
# customer (with the seeded listing and booking ids half of the time); the coverage phase also
# calls every secured operation without a token.
#
# Bounded and repeatable: SCHEMATHESIS_MAX_EXAMPLES (100) generated cases per operation,
# SCHEMATHESIS_SEED (1), SCHEMATHESIS_TIMEOUT (300 s) for the whole run (about a minute here). Exits non-zero on any
# failure (the API's errors are printed; its whole log and schemathesis's JUnit report stay in
# .local/schemathesis/). If schemathesis cannot be installed here (no python3 venv, no PyPI), it
# says SKIPPED and exits 0. Everything it started is stopped at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# shellcheck source=deploy/lib/services.sh
source "$ROOT/deploy/lib/services.sh"

say() { printf 'schemathesis.sh: %s\n' "$*" >&2; }
die() { printf 'schemathesis.sh: error: %s\n' "$*" >&2; exit 1; }

SCHEMATHESIS_VERSION=4.32.5   # 4.x: OpenAPI 3.1, per-operation headers and dictionaries
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-100}
SEED=${SCHEMATHESIS_SEED:-1}
RUN_TIMEOUT=${SCHEMATHESIS_TIMEOUT:-300}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
VENV=$ORDERLY_LOCAL_DIR/schemathesis-venv
OUT=$ORDERLY_LOCAL_DIR/schemathesis   # this run's API log, config and report, kept for a look
DB_NAME=orderly_schemathesis

API_PID=''
ADMIN_URL=''
PREFIX="schemathesis:$$:$(date +%s)"
cleanup() {
    trap '' INT TERM HUP
    if [[ -n $API_PID ]]; then
        kill -TERM "$API_PID" 2>/dev/null || true
        wait "$API_PID" 2>/dev/null || true
    fi
    if [[ -n $ADMIN_URL ]]; then
        psql -X -w -q -At "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    # The run's Redis keys (login counters, pause flags), when redis-cli is at hand.
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
command -v curl >/dev/null 2>&1 || orderly_install_packages curl || die "curl is needed to seed the API"

# One run at a time per checkout: the database name is fixed.
mkdir -p "$ORDERLY_LOCAL_DIR"
exec 8>"$ORDERLY_LOCAL_DIR/schemathesis.lock"
if ! flock -n 8; then
    say "another deploy/schemathesis.sh is running here; waiting for it"
    flock 8
fi

# schemathesis comes from PyPI; not being able to install it (no root for python3-venv, no
# network) skips the check loudly rather than failing on something the API did not cause.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    orderly_install_packages python3 python3-venv || { say "SKIPPED: python3 with venv cannot be installed"; exit 0; }
fi
if [[ $("$VENV/bin/st" --version 2>/dev/null) != *" $SCHEMATHESIS_VERSION" ]]; then
    say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    rm -rf "$VENV"
    if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" </dev/null; }; then
        rm -rf "$VENV"
        say "SKIPPED: cannot install schemathesis $SCHEMATHESIS_VERSION from PyPI"
        exit 0
    fi
fi

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
# The API as a new user runs it: development settings, simulated payments that authorise at
# once, SMS to a log, no e-mail (that is the worker's), and nothing from the caller's
# environment that would point it at a real provider.
unset STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET STRIPE_API_BASE SMTP_URL SENTRY_DSN TWILIO_ACCOUNT_SID TWILIO_AUTH_TOKEN
export APP_ENV=development SIMULATED_PAYMENTS=authorize SMS_PROVIDER=log DATA_DIR=$OUT/data
export REDIS_PREFIX=$PREFIX API_ADDR=127.0.0.1:0 LOG_FORMAT=json
JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
export JWT_SECRET

admin_email=admin@schemathesis.example admin_password="admin-$(head -c 12 /dev/urandom | base64 | tr -d '\n/+=')"
printf '%s\n' "$admin_password" | "$BIN/orderly-api" create-admin --email "$admin_email" --password-stdin >"$OUT/create-admin.log" 2>&1 \
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

# POST $1 with JSON $2 (and a bearer token $3); prints the field $4 of the answer, which must be 2xx.
post() {
    local answer
    answer=$(curl -sS --max-time 30 -X POST "$BASE$1" -H 'content-type: application/json' \
        ${3:+-H "authorization: Bearer $3"} -d "$2" -w '\n%{http_code}') || die "POST $1 failed"
    [[ ${answer##*$'\n'} == 2?? ]] || die "POST $1 answered ${answer##*$'\n'}: ${answer%$'\n'*}"
    printf '%s' "${answer%$'\n'*}" | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$4" \
        || die "POST $1: no $4 in the answer"
}
say "seeding a customer, a provider, an admin, a listing and a booking"
customer=$(post /api/v1/auth/register '{"email":"customer@schemathesis.example","password":"customer-password","name":"Customer","phone":"+4915112345678"}' '' access)
provider=$(post /api/v1/auth/register '{"email":"provider@schemathesis.example","password":"provider-password","name":"Provider","role":"provider"}' '' access)
admin=$(post /api/v1/auth/login "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" '' access)
starts_at=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
listing=$(post /api/v1/listings "{\"title\":\"Pottery\",\"starts_at\":\"$starts_at\",\"capacity\":100000,\"price_cents\":2500,\"currency\":\"eur\"}" "$provider" id)
booking=$(post /api/v1/bookings "{\"listing_id\":\"$listing\",\"quantity\":2}" "$customer" id)
# The jobs that booking queued (its expiry, its messages): something for the admin's retry and
# discard to find.
jobs=$(sql "$DATABASE_URL" "SELECT string_agg(format('\"%s\"', id), ', ') FROM outbox") || die "cannot read the outbox"
[[ -n $jobs ]] || die "the seeded booking queued no job"
# Start times in the future (a listing must start after it is created or changed).
future=$(for days in 7 30 365; do printf '"%s", ' "$(date -u -d "+$days days" +%Y-%m-%dT%H:%M:%SZ)"; done)

# Tokens reach schemathesis through its environment, never its command line.
export ORDERLY_ST_ADMIN=$admin ORDERLY_ST_CUSTOMER=$customer
cat >"$OUT/schemathesis.toml" <<EOF
# Written by deploy/schemathesis.sh for one run.
headers = { Authorization = "Bearer \${ORDERLY_ST_ADMIN}" }

# Nothing carried over from earlier runs: each run is the seed's.
[cache]
enabled = false

[generation]
database = "none"

[warnings]
fail-on = ["unresolvable_reference"]

[dictionaries]
listings = { values = ["$listing"] }
bookings = { values = ["$booking"] }
jobs = { values = [$jobs] }
future = { values = [${future%, }] }

[[operations]]
include-tag = "listings"
parameters = { "path.id" = { dictionary = "listings", probability = 0.5 }, "body.starts_at" = { dictionary = "future", probability = 0.5 } }

[[operations]]
include-path-regex = "^/api/v1/admin/jobs/"
parameters = { "path.job_id" = { dictionary = "jobs", probability = 0.5 } }

[[operations]]
include-tag = "bookings"
headers = { Authorization = "Bearer \${ORDERLY_ST_CUSTOMER}" }
parameters = { "path.id" = { dictionary = "bookings", probability = 0.5 }, "body.listing_id" = { dictionary = "listings", probability = 0.5 } }
EOF

say "running schemathesis $SCHEMATHESIS_VERSION: $MAX_EXAMPLES examples per operation, seed $SEED, at most ${RUN_TIMEOUT}s"
status=0
(cd "$OUT" && timeout -k 10 "$RUN_TIMEOUT" "$VENV/bin/st" --config-file "$OUT/schemathesis.toml" run "$BASE/api/v1/openapi.json" \
    --url "$BASE" --checks "$CHECKS" --max-examples "$MAX_EXAMPLES" --seed "$SEED" \
    --request-timeout 20 --no-color --report junit --report-junit-path "$OUT/junit.xml" "$@" </dev/null) \
    || status=$?

if ! kill -0 "$API_PID" 2>/dev/null; then
    say "FAILED: orderly-api died during the run"
    ((status)) || status=1
fi
# A panicking handler drops its connection unanswered: a bug even where no check caught it.
if grep -q ' panicked at ' "$OUT/api.log"; then
    say "FAILED: a request made the API panic:"
    grep -A 2 ' panicked at ' "$OUT/api.log" | head -n 20 >&2
    ((status)) || status=1
fi
# Orderly's own errors: a 5xx's cause, logged with its request id.
errors=$(grep '"level":"ERROR"' "$OUT/api.log" | grep '"target":"orderly' | tail -n 20) || errors=''
if [[ -n $errors ]]; then
    say "the API logged errors (the causes of its 5xx answers):"
    printf '%s\n' "$errors" >&2
fi
case $status in
    0) say "passed: no 5xx, no undocumented status, content type or body, no unresolvable reference" ;;
    124 | 137) say "FAILED: schemathesis did not finish within ${RUN_TIMEOUT}s" ;;
    *) say "FAILED (exit status $status): see the failures above; API log in $OUT/api.log" ;;
esac
exit "$status"
