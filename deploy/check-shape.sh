#!/usr/bin/env bash
# deploy/check-shape.sh: the workspace's shape, as CI holds it.
#   - hand-written SQL outside migrations goes through orderly_db::sql! (named, registered, and
#     PREPAREd against the migrated schema by worker/tests/sql.rs): no other
#     Statement::from_sql_and_values in product code;
#   - every path and link the README and docs/ name exists (deploy/check-docs.py);
#   - no import cycle between the files (modules) of any crate (deploy/check-cycles.py);
#   - orderly-testing (fakes, test servers, a database per test) is never a normal or build
#     dependency of a product crate: only [dev-dependencies];
#   - no product crate's code (its src/) holds more than a third of the workspace's product Rust
#     lines (every crate's src/; test suites and the test-support crate are printed beside it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
status=0
python3 deploy/check-docs.py || status=1
unchecked=$(grep -rn --include='*.rs' 'from_sql_and_values' api/src worker/src scheduler/src shared/*/src deploy/bench/src \
    | grep -v '^shared/db/src/sql.rs:' | grep -v '^shared/testing/' || true)
if [[ -n $unchecked ]]; then
    echo "SQL outside orderly_db::sql! (not checked against the schema):"
    echo "$unchecked"
    status=1
fi
python3 deploy/check-cycles.py || status=1

for crate in orderly-api orderly-admin orderly-worker orderly-scheduler orderly-domain orderly-jobs \
    orderly-providers orderly-core orderly-db orderly-bench; do
    if cargo tree --offline -q -e normal,build -p "$crate" --prefix none 2>/dev/null \
        | grep -q '^orderly-testing '; then
        echo "$crate depends on orderly-testing outside [dev-dependencies]"
        status=1
    fi
done

lines() { find "$@" -name '*.rs' -not -path '*/target/*' -print0 | xargs -0 cat | wc -l; }
crates=(api api/admin worker scheduler shared/core shared/db shared/jobs shared/providers shared/domain
    migrations deploy/bench)
srcs=()
for dir in "${crates[@]}"; do srcs+=("$dir/src"); done
total=$(lines "${srcs[@]}")
printf '%-18s %12s %6s %12s\n' crate "src lines" share "with tests"
for dir in "${crates[@]}"; do
    n=$(lines "$dir/src")
    printf '%-18s %12d %5d%% %12d\n' "$dir" "$n" $((100 * n / total)) "$(lines "$dir/src" $([[ -d $dir/tests ]] && echo "$dir/tests"))"
    if ((3 * n > total)); then
        echo "$dir holds more than a third of the workspace's $total lines of product code"
        status=1
    fi
done
printf '%-18s %12d %6s %12d\n' shared/testing "$(lines shared/testing/src)" "" "$(lines shared/testing)"
((status == 0)) && echo "shape: no cycles, test support only under dev-dependencies, no crate over a third"
exit "$status"
