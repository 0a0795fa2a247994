#!/usr/bin/env bash
# deploy/bench.sh: measure Orderly and print a table of figures against the targets.
#
#   deploy/bench.sh            full run: release build, 30 s loads (about 6 minutes)
#   deploy/bench.sh --smoke    a few seconds per figure, debug build (keeps the script from rotting)
#   deploy/bench.sh --backlog  only the backlog drain: 10 000, 100 000 and 1 000 000 queued jobs
#                              (BACKLOG_SIZES to choose), drain rate and Redis peak memory
#
# Uses the private PostgreSQL and Redis of deploy/lib/services.sh (or DATABASE_URL/REDIS_URL),
# in a database of its own (orderly_bench, recreated each run) and a Redis prefix of its own.
# Quote medians of several runs: the machine is shared and noisy.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# Measured on what production runs: a private PostgreSQL with the default durability (fsync,
# synchronous_commit and full_page_writes on) and pg_stat_statements, or DATABASE_URL's server.
export ORDERLY_PG_DURABLE=1
# shellcheck source=deploy/lib/services.sh
source "$ROOT/deploy/lib/services.sh"

say() { printf 'bench.sh: %s\n' "$*" >&2; }
die() { printf 'bench.sh: error: %s\n' "$*" >&2; exit 1; }

SMOKE=0 BACKLOG=0
[[ ${1:-} == --smoke ]] && SMOKE=1
[[ ${1:-} == --backlog ]] && BACKLOG=1
if ((SMOKE)); then
    PROFILE=debug; LOAD_S=3; GET_S=2; DRAIN_N=2000; EMAIL_N=500; ENQ_N=2000; LAT_S=2; EXP_N=20; EXP_SPREAD=1; PGB_S=3
else
    PROFILE=release; LOAD_S=30; GET_S=15; DRAIN_N=50000; EMAIL_N=20000; ENQ_N=100000; LAT_S=10; EXP_N=200; EXP_SPREAD=5; PGB_S=30
fi
CONNECTIONS=64

PIDS=()
WORK=''
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # The e-mails and SMS log the drains wrote (hundreds of MB a run); results and logs stay.
    [[ -z ${WORK:-} ]] || rm -rf "$WORK/data"
    orderly_stop_services
}
trap cleanup EXIT
trap 'exit 130' INT TERM

orderly_require_cargo || exit 1
if ! command -v curl >/dev/null 2>&1; then
    orderly_install_packages curl || die "curl is needed to wait for the API"
fi
orderly_ensure_postgres || exit 1
orderly_ensure_redis || exit 1

if ((SMOKE)); then
    cargo build --workspace --bins || die "build failed"
else
    cargo build --release --workspace --bins || die "build failed"
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE

sql() { psql -X -w -q -At -v ON_ERROR_STOP=1 "$1" -c "$2"; }
ADMIN_URL=$DATABASE_URL
BENCH_DB=orderly_bench
sql "$ADMIN_URL" "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)"
sql "$ADMIN_URL" "CREATE DATABASE $BENCH_DB"
DATABASE_URL=$(orderly_db_url "$BENCH_DB")
export DATABASE_URL
"$BIN/orderly-migrate" up >/dev/null || die "migrations failed"
# Statements per booking come from pg_stat_statements (loaded by the private durable server;
# another server may lack it, and the figure is then left out).
sql "$DATABASE_URL" "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" 2>/dev/null \
    || say "pg_stat_statements is not available: statements per booking will not be counted"
# Planning counted beside execution (the statements table's plans and plan µs); a superuser
# setting, left off where the role may not set it.
sql "$DATABASE_URL" "ALTER DATABASE $BENCH_DB SET pg_stat_statements.track_planning = on" 2>/dev/null || true

WORK=$(mktemp -d)
export REDIS_PREFIX="bench:$$:$(date +%s)" API_ADDR=127.0.0.1:18080 DATA_DIR=$WORK/data
export RUST_LOG=error LOG_FORMAT=json JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
# The load comes from one loopback address, as a few hundred customers at full speed, each
# holding many unpaid bookings: the abuse limits that guard a public deployment are lifted
# for it (the hold cap's check itself still runs in every booking).
export RATE_LIMIT_REGISTRATIONS_PER_HOUR=1000000 RATE_LIMIT_BOOKINGS_PER_MINUTE=1000000
export MAX_OPEN_HOLDS_PER_CUSTOMER=1000000 LOGIN_MAX_FAILURES_PER_CLIENT=1000000
RESULTS=$WORK/results.jsonl
record() { printf '{"name":"%s","result":%s}\n' "$1" "$2" >>"$RESULTS"; }
record durability "$("$BIN/orderly-bench" durability)"

if ((BACKLOG)); then
    # One worker for the queue starts only once the whole backlog is queued.
    for n in ${BACKLOG_SIZES:-10000 100000 1000000}; do
        say "backlog: $n noop jobs queued with no worker, then one worker drains them"
        printf '%s\n' "$("$BIN/orderly-bench" backlog --count "$n" --worker-bin "$BIN/orderly-worker")"
    done
    exit 0
fi

start() { # name, binary, args...
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$name=$!"
}
stop() { # name
    local var="PID_$1" pid
    pid=${!var}
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Two APIs on one database: `api` answers the booking request as with a real provider (the
# authorisation arrives later, by webhook), so its work is the booking transaction that
# pgbench replays; `full` uses the simulated provider that authorises at once, so each
# booking also confirms, queues a capture and two messages: the load the worker drains.
FULL_ADDR=127.0.0.1:18081
SIMULATED_PAYMENTS=never start api "$BIN/orderly-api"
API_ADDR=$FULL_ADDR SIMULATED_PAYMENTS=authorize start full "$BIN/orderly-api"
start scheduler "$BIN/orderly-scheduler"
for addr in "$API_ADDR" "$FULL_ADDR"; do
    for _ in $(seq 1 100); do curl -fsS "http://$addr/ready" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fsS "http://$addr/ready" >/dev/null || die "the API on $addr did not become ready (see $WORK/*.log)"
done

say "setting up customers and listings"
"$BIN/orderly-bench" setup --api "http://$API_ADDR" --out "$WORK/fixture.json" >/dev/null

say "bookings, no worker running (${LOAD_S}s, $CONNECTIONS connections)"
record bookings "$("$BIN/orderly-bench" bookings --api "http://$API_ADDR" --fixture "$WORK/fixture.json" --connections $CONNECTIONS --seconds $LOAD_S)"
say "GET booking (${GET_S}s)"
record get_booking "$("$BIN/orderly-bench" get-booking --api "http://$API_ADDR" --fixture "$WORK/fixture.json" --connections $CONNECTIONS --seconds $GET_S)"
say "bookings with instant authorisation, no worker running (${LOAD_S}s)"
record bookings_full "$("$BIN/orderly-bench" bookings --api "http://$FULL_ADDR" --fixture "$WORK/fixture.json" --connections $CONNECTIONS --seconds $LOAD_S)"

say "starting one worker; draining what the bookings queued"
start worker "$BIN/orderly-worker"
# 0 once every job due now has ended (from the partial indexes: polling costs next to nothing).
backlog() { sql "$DATABASE_URL" "SELECT (EXISTS (SELECT 1 FROM unnest(ARRAY['bookings','payments','email','sms','reports']) AS q(queue) WHERE EXISTS (SELECT 1 FROM outbox WHERE status = 'pending' AND queue = q.queue AND run_at <= now())) OR EXISTS (SELECT 1 FROM outbox WHERE status IN ('enqueued','running')))::int"; }
for _ in $(seq 1 3000); do [[ $(backlog) == 0 ]] && break; sleep 0.2; done
say "the whole flow: bookings with instant authorisation while the worker drains (${LOAD_S}s), then the drain"
record flow "$("$BIN/orderly-bench" flow --api "http://$FULL_ADDR" --fixture "$WORK/fixture.json" --connections $CONNECTIONS --seconds $LOAD_S --statements-out "$WORK/statements.txt")"

say "draining $DRAIN_N noop jobs"
record drain_noop "$("$BIN/orderly-bench" drain --kind noop --count $DRAIN_N)"
say "draining $EMAIL_N send_email jobs"
record drain_send_email "$("$BIN/orderly-bench" drain --kind send_email --count $EMAIL_N)"
say "enqueue-to-done latency of noop jobs at light load (${LAT_S}s)"
record latency "$("$BIN/orderly-bench" latency --rate 50 --seconds $LAT_S)"
say "expiry lateness ($EXP_N bookings)"
record expiry "$("$BIN/orderly-bench" expiry --count $EXP_N --hold-seconds 2 --spread-seconds $EXP_SPREAD)"
record rss_api "{\"kb\":$(peak_rss_kb "$PID_api")}"
record rss_worker "{\"kb\":$(peak_rss_kb "$PID_worker")}"
record rss_scheduler "{\"kb\":$(peak_rss_kb "$PID_scheduler")}"

say "enqueue rate from one process, no worker running"
stop worker
record enqueue "$("$BIN/orderly-bench" enqueue --count $ENQ_N --concurrency 32 --mode grouped)"
record enqueue_transaction "$("$BIN/orderly-bench" enqueue --count $ENQ_N --concurrency 32 --mode transaction)"
record enqueue_bulk "$("$BIN/orderly-bench" enqueue --count $ENQ_N --concurrency 32 --mode bulk --chunk 500)"

say "pgbench: the booking transaction in plain SQL (${PGB_S}s, $CONNECTIONS clients)"
sql "$DATABASE_URL" "CREATE TABLE bench_listings AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM listings"
customer=$(sql "$DATABASE_URL" "SELECT id FROM users WHERE role = 'customer' LIMIT 1")
listings=$(sql "$DATABASE_URL" "SELECT count(*) FROM bench_listings")
cat >"$WORK/booking.sql" <<SQL
\set n random(1, $listings)
BEGIN;
SELECT l.id, l.seats_left, l.price_cents FROM listings l JOIN bench_listings b ON b.id = l.id WHERE b.n = :n FOR UPDATE OF l;
UPDATE listings SET seats_left = seats_left - 1, updated_at = now() FROM bench_listings b WHERE b.id = listings.id AND b.n = :n AND seats_left >= 1;
INSERT INTO bookings (id, listing_id, customer_id, quantity, amount_cents, currency, status, hold_expires_at)
  SELECT gen_random_uuid(), id, '$customer', 1, 1000, 'eur', 'pending_payment', now() + interval '15 minutes' FROM bench_listings WHERE n = :n RETURNING id AS booking \gset
INSERT INTO payments (id, booking_id, provider, status, amount_cents, currency) VALUES (gen_random_uuid(), ':booking', 'simulated', 'creating', 1000, 'eur');
INSERT INTO outbox (id, queue, job_type, payload, task_id, run_at)
  VALUES (gen_random_uuid(), 'bookings', 'expire_booking', jsonb_build_object('booking_id', ':booking'), 'expire_booking:' || ':booking', now() + interval '15 minutes');
COMMIT;
SQL
PGBENCH=$(command -v pgbench || echo "${_ORDERLY_PG_BIN:-/usr/lib/postgresql/15/bin}/pgbench")
# pgbench FILE NAME MODE: replays FILE from $CONNECTIONS clients with query mode MODE and
# records its rate and its own p50/p99 (the per-transaction log's third column, microseconds)
# under NAME.
pgbench_run() {
    local tps p50 p99
    rm -f "$WORK"/pgbench_log.*
    tps=$("$PGBENCH" -n -M "$3" -c $CONNECTIONS -j 2 -T $PGB_S -f "$1" -D booking="$GET_ID" -l --log-prefix="$WORK/pgbench_log" "$DATABASE_URL" 2>"$WORK/pgbench.err" | awk '/^tps/ {print $3; exit}')
    [[ -n $tps ]] || die "pgbench failed: $(tail -3 "$WORK/pgbench.err")"
    read -r p50 p99 < <(cat "$WORK"/pgbench_log.* | awk '{print $3}' | sort -n \
        | awk '{v[NR] = $1} END {printf "%.2f %.2f\n", v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000}')
    record "$2" "{\"tps\":$tps,\"p50_ms\":$p50,\"p99_ms\":$p99}"
}
GET_ID=$(sql "$DATABASE_URL" "SELECT id FROM bookings ORDER BY created_at LIMIT 1")
pgbench_run "$WORK/booking.sql" pgbench simple
# The query behind GET /api/v1/bookings/{id} (BookingView::fetch), prepared, for one booking.
cat >"$WORK/get.sql" <<'SQL'
SELECT b.id, b.listing_id, b.customer_id, b.quantity, b.amount_cents, b.currency, b.status,
       b.hold_expires_at, b.created_at, b.updated_at, l.provider_id,
       p.provider AS payment_provider, p.status AS payment_status, p.client_secret,
       COALESCE((SELECT json_agg(json_build_object('channel', n.channel, 'kind', n.kind,
                                                   'status', n.status, 'sent_at', n.sent_at)
                                 ORDER BY n.created_at)
                   FROM notifications n WHERE n.booking_id = b.id), '[]'::json) AS notifications
  FROM bookings b
  JOIN listings l ON l.id = b.listing_id
  LEFT JOIN payments p ON p.booking_id = b.id
 WHERE b.id = :booking;
SQL
say "pgbench: the GET /bookings/{id} query, prepared (${PGB_S}s, $CONNECTIONS clients)"
pgbench_run "$WORK/get.sql" pgbench_get prepared

stop api
stop full
stop scheduler
"$BIN/orderly-bench" report --results "$RESULTS"
if [[ -s $WORK/statements.txt ]]; then
    echo
    echo "Statements per completed booking in the whole-flow phase (pg_stat_statements; top 30):"
    cat "$WORK/statements.txt"
fi
say "raw results: $RESULTS"
