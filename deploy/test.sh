#!/usr/bin/env bash
# deploy/test.sh: run Orderly's whole test suite against private PostgreSQL and Redis servers.
#
#   deploy/test.sh [ARGS...]   ARGS go to `cargo nextest run` (or `cargo test` without nextest)
#
# Set DATABASE_URL / REDIS_URL / ORDERLY_TEST_REDIS_CLUSTER_URL to use existing servers
# instead (the DATABASE_URL user needs CREATEDB). Servers this script starts are stopped when
# it ends; servers it finds running are left alone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# shellcheck source=deploy/lib/services.sh
source "$ROOT/deploy/lib/services.sh"

die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'test.sh: %s\n' "$*" >&2; }

# The runner's counts, repeated as the very last line (after the servers stop), so that the
# closing line of the output is the test result.
SUMMARY=""
finish() {
    orderly_stop_services
    [[ -z $SUMMARY ]] || printf '%s\n' "$SUMMARY"
}
trap finish EXIT
# Turn signals into a normal exit so the EXIT trap stops the servers.
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# One run at a time per checkout, from before the servers start to after they stop: a run
# drops the per-test databases left by earlier (crashed or interrupted) runs and rebuilds
# the template, which would pull them from under a run in progress, and stops at its end
# the servers it started, which a run that reused them would lose mid-way.
mkdir -p "$ORDERLY_LOCAL_DIR"
exec 9>"$ORDERLY_LOCAL_DIR/test.lock"
if ! flock -n 9; then
    say "another deploy/test.sh is running here; waiting for it"
    flock 9
fi

orderly_require_cargo || exit 1
orderly_ensure_postgres || exit 1
# The outage test stops and restarts a PostgreSQL server of its own: initdb and pg_ctl on
# PATH, and (as root) the user to run it as.
pg_bin=$(_orderly_find_pg_bindir) || { orderly_install_packages postgresql && pg_bin=$(_orderly_find_pg_bindir); } \
    || die "initdb/pg_ctl not found (the outage test needs them)"
export PATH="$pg_bin:$PATH"
if _orderly_is_root; then ORDERLY_PG_USER=$(_orderly_pg_user) || exit 1; export ORDERLY_PG_USER; fi
orderly_ensure_redis || exit 1
# The pipeline's cluster tests run on a three-master Redis Cluster of their own.
orderly_ensure_redis_cluster || exit 1
# The clock-skew test runs a worker under Debian's libfaketime.
compgen -G '/usr/lib/*/faketime/libfaketimeMT.so.1' >/dev/null || orderly_install_packages faketime || exit 1
# The dashboard's browser test drives Debian's Chromium through chromedriver.
command -v chromedriver >/dev/null 2>&1 || orderly_install_packages chromium chromium-driver || exit 1

# Only the migration binary is needed before the tests; the test runner builds the rest
# itself (with the features the tests need), and the tests find binaries via CARGO_BIN_EXE_*.
say "building orderly-migrate (cargo build -p orderly-migrations --bin orderly-migrate)"
cargo build -p orderly-migrations --bin orderly-migrate || die "cargo build failed"

target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
migrate=$target_dir/debug/orderly-migrate
[[ -x $migrate ]] || die "$migrate not found after the build"

# psql against DATABASE_URL: no psqlrc, never prompt for a password (CI has no terminal).
sql() { PGOPTIONS="-c client_min_messages=warning" PGCONNECT_TIMEOUT=10 psql -X -w -q -At -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"; }
quote_ident() { printf '"%s"' "${1//\"/\"\"}"; }

template=orderly_test_template

leftovers=$(sql "SELECT datname FROM pg_database WHERE datname LIKE 'orderly\_test\_%' AND datname <> '$template'") \
    || die "cannot list databases on $(_orderly_redact "$DATABASE_URL")"
if [[ -n $leftovers ]]; then
    say "dropping $(wc -l <<<"$leftovers") leftover test database(s)"
    while IFS= read -r db; do
        # WITH (FORCE): a killed test may still hold connections (PostgreSQL 13+).
        sql "DROP DATABASE IF EXISTS $(quote_ident "$db") WITH (FORCE)" || die "cannot drop database $db"
    done <<<"$leftovers"
fi

# A fresh template with the current migrations; every test clones it (CREATE DATABASE ... TEMPLATE).
say "creating template database $template"
sql "DROP DATABASE IF EXISTS $template WITH (FORCE)" || die "cannot drop database $template"
sql "CREATE DATABASE $template" || die "cannot create database $template (does the DATABASE_URL user have CREATEDB?)"
DATABASE_URL=$(orderly_db_url "$template") "$migrate" up || die "migrations failed on $template"
export TEST_TEMPLATE_DATABASE=$template

if cargo nextest --version >/dev/null 2>&1; then
    runner=(cargo nextest run --workspace --no-fail-fast)
else
    say "cargo-nextest not installed; using cargo test"
    runner=(cargo test --workspace --no-fail-fast)
fi
say "running: ${runner[*]} $*"
status=0
output=$(mktemp)
set +e
"${runner[@]}" "$@" 2>&1 | tee "$output"
status=${PIPESTATUS[0]}
set -e
passed=$( (grep -Eo '[0-9]+ passed' "$output" || true) | awk '{n += $1} END {print n + 0}')
failed=$( (grep -Eo '[0-9]+ failed' "$output" || true) | awk '{n += $1} END {print n + 0}')
rm -f "$output"
if ((status == 0)); then say "tests passed"; else say "tests FAILED (exit status $status)"; fi
SUMMARY="tests: $passed passed, $failed failed"
exit "$status"
