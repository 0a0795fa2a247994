#!/usr/bin/env bash
# deploy/dev.sh: run Orderly locally. Starts (or reuses) private PostgreSQL and Redis servers,
# builds, migrates, then runs orderly-api, orderly-worker and orderly-scheduler until Ctrl-C.
#
# Environment: API_ADDR (default 127.0.0.1:8080), DATA_DIR (default <repo>/data), JWT_SECRET
# (unset: in development each process generates a random one at start), ORDERLY_RELEASE=1 for
# a release build, and DATABASE_URL / REDIS_URL to use existing servers (see
# deploy/lib/services.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# shellcheck source=deploy/lib/services.sh
source "$ROOT/deploy/lib/services.sh"

die() { printf 'dev.sh: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'dev.sh: %s\n' "$*" >&2; }

declare -A PIDS=()   # process name -> pid of the real binary (not of its log filter)
STOP_TIMEOUT=30      # seconds to wait after SIGTERM before SIGKILL
READY_TIMEOUT=60     # seconds to wait for /ready

alive() { kill -0 "$1" 2>/dev/null; }

stop_processes() {
    local name pid deadline
    ((${#PIDS[@]})) || return 0
    say "stopping ${!PIDS[*]}"
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + STOP_TIMEOUT))
    for name in "${!PIDS[@]}"; do
        pid=${PIDS[$name]}
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
        if alive "$pid"; then
            say "orderly-$name did not stop within ${STOP_TIMEOUT}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

cleanup() {
    trap '' INT TERM HUP   # a second Ctrl-C must not cut the clean shutdown short
    stop_processes
    orderly_stop_services
}
trap cleanup EXIT
# Ctrl-C/SIGTERM: exit normally (0) once everything runs; the EXIT trap does the stopping.
SIGNAL_STATUS=130
trap 'exit $SIGNAL_STATUS' INT TERM HUP

# Fail (non-zero) as soon as one of the processes ends on its own.
check_processes() {
    local name status
    for name in "${!PIDS[@]}"; do
        alive "${PIDS[$name]}" && continue
        status=0
        wait "${PIDS[$name]}" 2>/dev/null || status=$?
        unset "PIDS[$name]"
        say "error: orderly-$name exited on its own (exit status $status); stopping everything"
        exit 1
    done
}

orderly_require_cargo || exit 1
if ! command -v curl >/dev/null 2>&1; then
    orderly_install_packages curl || die "curl is needed to wait for the API"
fi

orderly_ensure_postgres || exit 1
orderly_ensure_redis || exit 1

export DATA_DIR=${DATA_DIR:-$ROOT/data}
export API_ADDR=${API_ADDR:-127.0.0.1:8080}
mkdir -p "$DATA_DIR" || die "cannot create DATA_DIR $DATA_DIR"

# http://0.0.0.0:8080 is not a useful address to print or poll.
base_url="http://$API_ADDR"
base_url=${base_url/\/\/0.0.0.0:/\/\/127.0.0.1:}
base_url=${base_url/\/\/\[::\]:/\/\/127.0.0.1:}
# curl exit status 7 = nothing listening; anything else means the port is taken already.
curl_status=0
curl -s -o /dev/null --max-time 2 "$base_url/ready" || curl_status=$?
((curl_status == 7)) || die "$API_ADDR is not free (curl status $curl_status: something already listens there, another dev.sh?); stop it or set API_ADDR"

if [[ ${ORDERLY_RELEASE:-0} == 1 ]]; then profile=release; build=(cargo build --workspace --bins --release)
else profile=debug; build=(cargo build --workspace --bins); fi
say "building (${build[*]})"
"${build[@]}" || die "cargo build failed"
target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
bin=$target_dir/$profile
for name in migrate api worker scheduler; do
    [[ -x $bin/orderly-$name ]] || die "$bin/orderly-$name not found after the build"
done

say "running migrations"
"$bin/orderly-migrate" up || die "orderly-migrate up failed"

# Each process logs to this terminal, lines prefixed with its name. The filter ignores
# signals so that it keeps printing the shutdown logs after Ctrl-C, and exits at EOF.
start_process() {
    local name=$1
    "$bin/orderly-$name" > >(trap '' INT TERM HUP; exec sed -u "s/^/[$name] /") 2>&1 &
    PIDS[$name]=$!
}
start_process api
start_process worker
start_process scheduler

say "waiting for $base_url/ready (up to ${READY_TIMEOUT}s)"
deadline=$((SECONDS + READY_TIMEOUT))
until curl -fs -o /dev/null --max-time 2 "$base_url/ready"; do
    check_processes
    if ((SECONDS >= deadline)); then
        say "error: the API did not become ready within ${READY_TIMEOUT}s; last answer:"
        curl -sS --max-time 2 "$base_url/ready" >&2 || true
        exit 1
    fi
    sleep 1
done
SIGNAL_STATUS=0

cat <<EOF

  Orderly is running (Ctrl-C stops it)
    API        $base_url
    API docs   $base_url/docs
    readiness  $base_url/ready
    metrics    $base_url/metrics
    DATABASE_URL=$(_orderly_redact "$DATABASE_URL")
    REDIS_URL=$(_orderly_redact "$REDIS_URL")

EOF

while true; do
    check_processes
    # Background sleep + wait: a signal interrupts `wait` at once (a foreground sleep would delay it).
    sleep 1 &
    wait $! || true
done
