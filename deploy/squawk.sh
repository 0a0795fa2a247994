#!/usr/bin/env bash
# deploy/squawk.sh: lint the SQL of every migration with squawk (PyPI `squawk-cli`, pinned,
# in a venv under .local/), offline.
#
# Each migrations/src/m*.rs holds its SQL in `const UP: &str = r#"..."#;` (run by
# `raw_sql_migration!`); that string is extracted to a .sql file and checked as PostgreSQL 15,
# inside a transaction (sea-orm-migration wraps each PostgreSQL migration in one). A migration
# file without such a string fails the gate, so that no SQL goes unchecked. The migrations
# named in deploy/squawk-baseline.txt (applied before this gate) have their findings printed,
# not failed; any other migration must be clean: `SET lock_timeout` and `statement_timeout`
# first, indexes on tables that can be large built CONCURRENTLY (a migration of its own with
# `use_transaction() -> Some(false)`), constraints added NOT VALID and validated after. A
# finding that is right to ignore is silenced in the SQL with `-- squawk-ignore <rule>` and
# a comment saying why. The gate checks itself too: a known-bad statement must be refused.
# If squawk cannot be installed (no python3 venv, no PyPI), it says SKIPPED and exits 0.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
LOCAL=${ORDERLY_LOCAL_DIR:-$ROOT/.local}
VENV=$LOCAL/squawk-venv
SQUAWK_VERSION=2.70.0
say() { printf 'squawk.sh: %s\n' "$*" >&2; }

if [[ ! -x $VENV/bin/squawk ]]; then
    if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "squawk-cli==$SQUAWK_VERSION"; }; then
        rm -rf "$VENV"
        say "SKIPPED: cannot install squawk-cli==$SQUAWK_VERSION from PyPI"; exit 0
    fi
fi
SQUAWK=("$VENV/bin/squawk" --pg-version=15 --assume-in-transaction --reporter=gcc)

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
python3 - "$ROOT/migrations/src" "$OUT" <<'PY'
import pathlib, re, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
files = sorted(src.glob("m[0-9]*.rs"))
assert files, f"no migrations under {src}"
for f in files:
    m = re.search(r'const UP: &str = r(#+)"(.*?)"\1;', f.read_text(), re.S)
    if not m:
        sys.exit(f"squawk.sh: {f.name}: no `const UP: &str = r#\"...\"#;` to check")
    (out / f"{f.stem}.sql").write_text(m.group(2))
PY

baselined() { grep -qx "$1" <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$ROOT/deploy/squawk-baseline.txt"); }
failed=0 checked=0 old=0
for sql in "$OUT"/*.sql; do
    name=$(basename "$sql" .sql)
    checked=$((checked + 1))
    if findings=$("${SQUAWK[@]}" "$sql" 2>&1); then
        continue
    fi
    if baselined "$name"; then
        old=$((old + $(grep -c ': warning: \|: error: ' <<<"$findings" || true)))
        continue
    fi
    say "$name: not clean:"
    printf '%s\n' "$findings" | sed "s|$OUT/\([^:]*\)\.sql:|migrations/src/\1.rs, line of UP:|" >&2
    failed=1
done

# The gate must bite: an index built in place on a big table, no lock_timeout.
printf 'CREATE INDEX bookings_probe_idx ON bookings (created_at);\n' >"$OUT/probe.sql"
if "${SQUAWK[@]}" "$OUT/probe.sql" >/dev/null 2>&1; then
    say "error: squawk accepted a known-bad migration; the gate is not checking"; exit 1
fi

if [[ $failed -ne 0 ]]; then
    say "FAILED: a migration not in deploy/squawk-baseline.txt has findings (above)"; exit 1
fi
say "ok: $checked migrations checked, new ones clean ($old findings in baselined, already-applied migrations)"
