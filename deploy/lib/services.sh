#!/usr/bin/env bash
# deploy/lib/services.sh: start (or reuse) the PostgreSQL and Redis servers Orderly needs.
# Sourced by deploy/dev.sh and deploy/test.sh; safe under `set -euo pipefail`.
#
#   orderly_ensure_postgres    exports DATABASE_URL and puts the PostgreSQL client tools on PATH
#   orderly_ensure_redis       exports REDIS_URL and REDIS_SERVER_BIN
#   orderly_ensure_redis_cluster  exports ORDERLY_TEST_REDIS_CLUSTER_URL (a three-master Redis
#                              Cluster on loopback, for the tests; after orderly_ensure_redis)
#   orderly_stop_services      stops only the servers that this shell started
#   orderly_install_packages   apt-get install as root, otherwise says what to install
#   orderly_require_cargo      makes sure `cargo` is on PATH
#   orderly_db_url NAME        prints DATABASE_URL with its database name replaced by NAME
#
# Settings (environment): DATABASE_URL / REDIS_URL (use these servers, start nothing),
# ORDERLY_LOCAL_DIR (default <repo>/.local), ORDERLY_PG_PORT (25432), ORDERLY_REDIS_PORT (26379),
# ORDERLY_REDIS_CLUSTER_PORTS ("26380 26381 26382"; ORDERLY_TEST_REDIS_CLUSTER_URL: use that cluster),
# ORDERLY_PG_DURABLE (set before sourcing; 0; 1 = a second private PostgreSQL, data in .local/pg-durable, default port
# 25433, with PostgreSQL's default durability and pg_stat_statements: what deploy/bench.sh uses).
#
# The private servers are for development and tests ONLY: trust auth, loopback only; the
# default one has no durability (fsync off), the durable one keeps PostgreSQL's defaults.
# Every function reports failures with `return 1` (never `exit`), and checks each step
# explicitly, because `set -e` is switched off inside functions called from `if`/`||`.

ORDERLY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
ORDERLY_LOCAL_DIR=${ORDERLY_LOCAL_DIR:-$ORDERLY_ROOT/.local}
ORDERLY_PG_DURABLE=${ORDERLY_PG_DURABLE:-0}
if [[ $ORDERLY_PG_DURABLE == 1 ]]; then ORDERLY_PG_PORT=${ORDERLY_PG_PORT:-25433}; else ORDERLY_PG_PORT=${ORDERLY_PG_PORT:-25432}; fi
ORDERLY_REDIS_PORT=${ORDERLY_REDIS_PORT:-26379}
ORDERLY_REDIS_CLUSTER_PORTS=${ORDERLY_REDIS_CLUSTER_PORTS:-26380 26381 26382}
# The default ports lie below Linux's ephemeral range (32768-60999): the benchmark and tests
# open thousands of loopback connections, and one of them may hold a port in that range.

# What this shell started (1) as opposed to reused; only those are stopped. `:=` keeps the
# values if the file is sourced twice.
: "${_ORDERLY_PG_STARTED:=0}" "${_ORDERLY_REDIS_STARTED:=0}" "${_ORDERLY_APT_UPDATED:=0}"
: "${_ORDERLY_REDIS_CLUSTER_STARTED:=0}"

_orderly_log() { printf 'orderly: %s\n' "$*" >&2; }
_orderly_err() { printf 'orderly: error: %s\n' "$*" >&2; }

# Hide the password of a URL in messages.
_orderly_redact() { printf '%s' "$1" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#'; }

_orderly_is_root() { [[ $(id -u) -eq 0 ]]; }

# True when something accepts TCP connections on 127.0.0.1:$1 (pure bash, no ss/netstat needed).
_orderly_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Print the last lines of a log file (to explain a failed start).
_orderly_tail() { [[ -f $1 ]] && { echo "---- last lines of $1 ----"; tail -n "${2:-20}" "$1"; echo "----"; } >&2; return 0; }

# True when pid $1 is alive and its command name starts with $2 (guards against a stale pid
# file whose pid now belongs to an unrelated process, e.g. after a container restart).
_orderly_pid_is() {
    local pid=$1 name=$2 comm
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 0   # no /proc: trust kill -0
    [[ $comm == "$name"* ]]
}

orderly_install_packages() {
    (($#)) || return 0
    if ! _orderly_is_root || ! command -v apt-get >/dev/null 2>&1; then
        _orderly_err "missing $*: install $* (e.g. sudo apt-get install -y $*)"
        return 1
    fi
    local -a apt=(apt-get -q -o DPkg::Lock::Timeout=300)
    if [[ $_ORDERLY_APT_UPDATED != 1 ]]; then
        _orderly_log "apt-get update"
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" update </dev/null >&2 \
            || { _orderly_err "apt-get update failed"; return 1; }
        _ORDERLY_APT_UPDATED=1
    fi
    _orderly_log "installing $* with apt-get"
    # confdef/confold: never stop at a dpkg configuration-file question (CI has no stdin).
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null >&2 \
        || { _orderly_err "apt-get install $* failed"; return 1; }
}

orderly_require_cargo() {
    # rustup installs into ~/.cargo/bin, which non-login CI shells often lack on PATH.
    if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || { _orderly_err "cargo not found: install the Rust toolchain (https://rustup.rs)"; return 1; }
}

# DATABASE_URL with the database (path) replaced by $1; keeps user, password, host and ?query.
orderly_db_url() {
    local url=${DATABASE_URL:?DATABASE_URL is not set} query='' rest
    if [[ $url == *\?* ]]; then query="?${url#*\?}"; url=${url%%\?*}; fi
    rest=${url#*://}
    printf '%s://%s/%s%s\n' "${url%%://*}" "${rest%%/*}" "$1" "$query"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------

# A directory with initdb, pg_ctl and postgres: pg_config's, else the newest Debian-style
# /usr/lib/postgresql/<major>/bin, else wherever pg_ctl on PATH really lives.
_orderly_pg_bindir_ok() { [[ -n $1 && -x $1/initdb && -x $1/pg_ctl && -x $1/postgres ]]; }
_orderly_find_pg_bindir() {
    local d p
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null) || d=''
        _orderly_pg_bindir_ok "$d" && { printf '%s\n' "$d"; return 0; }
    fi
    while IFS= read -r d; do
        _orderly_pg_bindir_ok "$d" && { printf '%s\n' "$d"; return 0; }
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
    if p=$(command -v pg_ctl 2>/dev/null); then
        d=$(dirname "$(readlink -f "$p")")
        _orderly_pg_bindir_ok "$d" && { printf '%s\n' "$d"; return 0; }
    fi
    return 1
}

# Major version of the server in bindir $1 ("postgres (PostgreSQL) 15.18 (Debian ...)" -> 15).
_orderly_pg_major() { "$1/postgres" -V 2>/dev/null | awk '{print $3}' | sed 's/[^0-9].*//'; }

# PostgreSQL refuses to run as root, so as root the server runs as `postgres` (created by the
# Debian package) or a dedicated `orderly` system user; otherwise as the current user.
_orderly_pg_user() {
    if ! _orderly_is_root; then id -un; return 0; fi
    if getent passwd postgres >/dev/null 2>&1; then echo postgres; return 0; fi
    if ! getent passwd orderly >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin orderly >&2 \
            || { _orderly_err "could not create the system user 'orderly' to run PostgreSQL"; return 1; }
    fi
    echo orderly
}

# Run a command as the PostgreSQL user. `cd /` because initdb/pg_ctl complain when they
# cannot read the current directory (e.g. /root).
_orderly_as_pg() {
    if _orderly_is_root; then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u "$_ORDERLY_PG_USER" -- "$@")
        else
            (cd / && setpriv --reuid="$_ORDERLY_PG_USER" --regid="$_ORDERLY_PG_USER" --init-groups -- "$@")
        fi
    else
        "$@"
    fi
}

# Create (and as root hand over) directory $1 for the PostgreSQL user; true when that user can
# write to it, which fails when a parent directory is closed to it (e.g. a checkout under /root).
_orderly_pg_prepare_dir() {
    mkdir -p "$1" || return 1
    if _orderly_is_root; then chown "$_ORDERLY_PG_USER:" "$1" || return 1; fi
    chmod 700 "$1" || return 1
    _orderly_as_pg test -w "$1" -a -x "$1" 2>/dev/null
}

_orderly_pg_isready() { "$_ORDERLY_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$ORDERLY_PG_PORT" -t 2 >/dev/null 2>&1; }

# psql against the private server's maintenance database.
_orderly_pg_psql() {
    PGCONNECT_TIMEOUT=10 "$_ORDERLY_PG_BIN/psql" -X -w -q -At -v ON_ERROR_STOP=1 \
        "postgres://orderly@127.0.0.1:$ORDERLY_PG_PORT/postgres" "$@"
}

# psql, createdb, dropdb, pg_isready on PATH; install the client package if needed.
_orderly_pg_client_tools() {
    local t missing=0
    for t in psql createdb dropdb pg_isready; do command -v "$t" >/dev/null 2>&1 || missing=1; done
    ((missing)) || return 0
    orderly_install_packages postgresql-client || return 1
    for t in psql createdb dropdb pg_isready; do
        command -v "$t" >/dev/null 2>&1 || { _orderly_err "$t not found even after installing postgresql-client"; return 1; }
    done
}

orderly_ensure_postgres() {
    local port=$ORDERLY_PG_PORT out
    local private_url="postgres://orderly@127.0.0.1:$port/orderly"

    # 1. A server named by the caller: only check that it answers (an exported URL of our own
    #    private server counts as "not set", so it gets started again if it is down).
    if [[ -n ${DATABASE_URL:-} && $DATABASE_URL != "$private_url" ]]; then
        _orderly_pg_client_tools || return 1
        if ! out=$(PGCONNECT_TIMEOUT=10 psql -X -w -At -c 'select 1' "$DATABASE_URL" 2>&1); then
            _orderly_err "DATABASE_URL ($(_orderly_redact "$DATABASE_URL")) does not answer: $(printf '%s' "$out" | head -n 1)"
            return 1
        fi
        export DATABASE_URL
        _orderly_log "PostgreSQL: using DATABASE_URL $(_orderly_redact "$DATABASE_URL")"
        return 0
    fi

    # 2. Our private server. Find (or install) the server binaries.
    local bindir major
    if ! bindir=$(_orderly_find_pg_bindir); then
        _orderly_log "no PostgreSQL server binaries found"
        orderly_install_packages postgresql || return 1
        bindir=$(_orderly_find_pg_bindir) || { _orderly_err "PostgreSQL installed, but initdb/pg_ctl/postgres still not found"; return 1; }
    fi
    _ORDERLY_PG_USER=$(_orderly_pg_user) || return 1

    # Data lives in $ORDERLY_LOCAL_DIR/pg. If the PostgreSQL user cannot reach that (a parent
    # directory is closed to it), fall back to a per-checkout directory under /var/tmp.
    local pgdir=$ORDERLY_LOCAL_DIR/pg
    [[ $ORDERLY_PG_DURABLE == 1 ]] && pgdir=$ORDERLY_LOCAL_DIR/pg-durable
    mkdir -p "$ORDERLY_LOCAL_DIR" || { _orderly_err "cannot create $ORDERLY_LOCAL_DIR"; return 1; }
    if ! _orderly_pg_prepare_dir "$pgdir"; then
        local alt
        alt="/var/tmp/orderly-pg-$(printf '%s' "$ORDERLY_LOCAL_DIR" | cksum | cut -d' ' -f1)"
        _orderly_log "user $_ORDERLY_PG_USER cannot reach $pgdir (closed parent directory?); using $alt instead"
        rmdir "$pgdir" 2>/dev/null || true
        pgdir=$alt
        _orderly_pg_prepare_dir "$pgdir" || { _orderly_err "user $_ORDERLY_PG_USER cannot write to $pgdir either; set ORDERLY_LOCAL_DIR to a directory it can reach"; return 1; }
    fi
    local data=$pgdir/data sockdir=$pgdir/run log=$pgdir/postgres.log

    # A cluster made by another major version needs that version's binaries.
    if [[ -s $data/PG_VERSION ]]; then
        local want
        want=$(cat "$data/PG_VERSION")
        if [[ $(_orderly_pg_major "$bindir") != "$want" ]]; then
            if _orderly_pg_bindir_ok "/usr/lib/postgresql/$want/bin"; then
                bindir=/usr/lib/postgresql/$want/bin
            else
                _orderly_err "$data was made by PostgreSQL $want but the server found is $(_orderly_pg_major "$bindir"); install PostgreSQL $want or delete $pgdir to start over"
                return 1
            fi
        fi
    fi
    major=$(_orderly_pg_major "$bindir")
    # The tests clone databases with CREATE DATABASE ... STRATEGY FILE_COPY (PostgreSQL 15+).
    if [[ $major =~ ^[0-9]+$ ]] && ((major < 15)); then
        _orderly_err "PostgreSQL $major found in $bindir, but Orderly needs PostgreSQL 15 or newer; install a newer server (or set DATABASE_URL to one)"
        return 1
    fi
    _ORDERLY_PG_BIN=$bindir _ORDERLY_PG_DATA=$data
    # Client tools of the same version first on PATH (test.sh uses psql, dropdb, ...).
    case ":$PATH:" in *":$bindir:"*) ;; *) export PATH="$bindir:$PATH" ;; esac
    _orderly_pg_client_tools || return 1

    # Initialise once. The bootstrap superuser is `orderly` (the test harness creates databases
    # from a template, which needs CREATEDB or superuser).
    if [[ ! -s $data/PG_VERSION ]]; then
        if [[ -d $data ]] && [[ -n $(ls -A "$data" 2>/dev/null) ]]; then
            _orderly_err "$data exists but is not a PostgreSQL cluster (interrupted initdb?); delete it and retry"
            return 1
        fi
        _orderly_log "PostgreSQL $major: initialising $data"
        if ! out=$(_orderly_as_pg "$bindir/initdb" -D "$data" -U orderly --auth=trust -E UTF8 --locale=C 2>&1); then
            printf '%s\n' "$out" >&2
            _orderly_err "initdb failed"
            return 1
        fi
        printf "\n# Orderly dev/test settings, rewritten by deploy/lib/services.sh at every start\ninclude_if_exists = 'orderly.conf'\n" >>"$data/postgresql.conf"
    fi

    local pid='' port_running=''
    if [[ -f $data/postmaster.pid ]]; then
        pid=$(sed -n 1p "$data/postmaster.pid")
        port_running=$(sed -n 4p "$data/postmaster.pid")
        if ! _orderly_pid_is "$pid" postgres; then
            # Stale lock file (server killed, container restarted): postgres would refuse to start
            # if its pid now belongs to some other live process.
            rm -f "$data/postmaster.pid"
            pid=''
        fi
    fi

    if [[ -n $pid ]]; then
        # Already running: reuse it (and do not stop it at the end, we did not start it).
        if [[ $port_running != "$port" ]]; then
            local as=''
            _orderly_is_root && as="runuser -u $_ORDERLY_PG_USER -- "
            _orderly_err "the private PostgreSQL in $data is already running on port $port_running, not $port; stop it (${as}$bindir/pg_ctl stop -D $data) or set ORDERLY_PG_PORT=$port_running"
            return 1
        fi
        local i
        for ((i = 0; i < 30; i++)); do _orderly_pg_isready && break; sleep 1; done
        _orderly_pg_isready || { _orderly_tail "$log"; _orderly_err "the private PostgreSQL (pid $pid) runs but does not answer on 127.0.0.1:$port"; return 1; }
        _orderly_log "PostgreSQL: reusing the private server on 127.0.0.1:$port (pid $pid)"
    else
        if _orderly_port_open "$port"; then
            _orderly_err "port $port is already used by another server; set ORDERLY_PG_PORT to a free port (or DATABASE_URL to use that server)"
            return 1
        fi
        mkdir -p "$sockdir" || { _orderly_err "cannot create $sockdir"; return 1; }
        if _orderly_is_root; then chown "$_ORDERLY_PG_USER:" "$sockdir" || return 1; fi
        # Unix socket paths are limited to ~107 bytes; everything here uses TCP anyway.
        local sockset=$sockdir
        if ((${#sockdir} > 90)); then sockset=''; fi
        # The default instance is for dev and tests only: fsync, synchronous_commit and
        # full_page_writes are off because speed matters more than surviving a power cut. The
        # durable instance (ORDERLY_PG_DURABLE=1, for benchmarks) keeps PostgreSQL's defaults,
        # as production runs, and loads pg_stat_statements to count statements.
        local durability="# Dev/test only: no crash safety.
fsync = off
synchronous_commit = off
full_page_writes = off"
        if [[ $ORDERLY_PG_DURABLE == 1 ]]; then
            durability="# Durable, as in production: fsync, synchronous_commit and full_page_writes on.
shared_preload_libraries = 'pg_stat_statements'"
        fi
        if ! cat >"$data/orderly.conf" <<EOF; then
# Written by deploy/lib/services.sh at every start: edit that script, not this file.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '${sockset//\'/\'\'}'
# Tests run many databases and connection pools in parallel.
max_connections = 400
shared_buffers = 256MB
$durability
EOF
            _orderly_err "cannot write $data/orderly.conf"
            return 1
        fi
        if _orderly_is_root; then chown "$_ORDERLY_PG_USER:" "$data/orderly.conf" || return 1; fi
        _orderly_log "PostgreSQL $major: starting the private server on 127.0.0.1:$port (log: $log)"
        # Marked before starting: a start that times out may still leave a server to stop.
        _ORDERLY_PG_STARTED=1
        # A port still held by a closing connection (a client socket is never bound to these
        # ports, which lie below Linux's ephemeral range, but a socket of a dying process can
        # linger) clears within seconds: wait for it a few times, saying who holds it.
        local attempt
        for attempt in 1 2 3 4; do
            _orderly_as_pg "$bindir/pg_ctl" start -D "$data" -l "$log" -w -t 60 -s >/dev/null && break
            if ((attempt < 4)) && grep -q 'Address already in use' "$log" 2>/dev/null; then
                _orderly_log "PostgreSQL: port $port is still held; retrying in 5 s"
                command -v ss >/dev/null 2>&1 && ss -tanp "( sport = :$port )" >&2
                sleep 5
                continue
            fi
            _orderly_tail "$log"
            _orderly_err "PostgreSQL did not start (see $log)"
            return 1
        done
        _orderly_pg_isready || { _orderly_tail "$log"; _orderly_err "PostgreSQL started but does not answer on 127.0.0.1:$port"; return 1; }
    fi

    # The application database (idempotent).
    if ! out=$(_orderly_pg_psql -c "select 1 from pg_database where datname = 'orderly'" 2>&1); then
        _orderly_err "cannot query the private PostgreSQL: $out"
        return 1
    fi
    if [[ $out != 1 ]]; then
        _orderly_pg_psql -c 'CREATE DATABASE orderly OWNER orderly' >/dev/null \
            || { _orderly_err "could not create database orderly"; return 1; }
    fi
    export DATABASE_URL=$private_url
    _orderly_log "PostgreSQL: DATABASE_URL=$DATABASE_URL"
}

# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------

# Absolute path, but symlinks NOT resolved: Debian's redis-server is a symlink to
# redis-check-rdb, one binary that picks its role from the name it was started under.
_orderly_find_redis_server() {
    local p
    for p in "$(command -v redis-server 2>/dev/null)" /usr/bin/redis-server /usr/local/bin/redis-server /usr/sbin/redis-server; do
        [[ -n $p && -x $p && ! -d $p ]] || continue
        [[ $p == /* ]] || p=$PWD/$p
        printf '%s\n' "$p"
        return 0
    done
    return 1
}

# PING 127.0.0.1:$1 without redis-cli.
_orderly_redis_ping() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'PING\r\n' >&3
        IFS= read -r -t 3 reply <&3 || exit 1
        [[ $reply == +PONG* ]]
    ) 2>/dev/null
}

orderly_ensure_redis() {
    local port=$ORDERLY_REDIS_PORT out
    local private_url="redis://127.0.0.1:$port"

    # Tests start throw-away Redis servers of their own, so redis-server is needed even when
    # REDIS_URL names an existing server.
    if [[ -z ${REDIS_SERVER_BIN:-} || ! -x ${REDIS_SERVER_BIN:-} ]]; then
        if ! REDIS_SERVER_BIN=$(_orderly_find_redis_server); then
            _orderly_log "redis-server not found"
            orderly_install_packages redis-server || return 1
            REDIS_SERVER_BIN=$(_orderly_find_redis_server) || { _orderly_err "redis-server installed but still not found"; return 1; }
        fi
    fi
    export REDIS_SERVER_BIN

    if [[ -n ${REDIS_URL:-} && $REDIS_URL != "$private_url" ]]; then
        if [[ $REDIS_URL == redis+cluster://* || $REDIS_URL == redis+sentinel://* ]]; then
            # redis-cli -u reads neither form; every Orderly process checks it at start.
            _orderly_log "not checking a Redis Cluster or Sentinel REDIS_URL with redis-cli"
        elif command -v redis-cli >/dev/null 2>&1; then
            # 2>&1: redis-cli warns about passwords in -u on stderr; only the reply matters.
            out=$(timeout 10 redis-cli -u "$REDIS_URL" ping 2>&1) || true
            if [[ $out != *PONG* ]]; then
                _orderly_err "REDIS_URL ($(_orderly_redact "$REDIS_URL")) does not answer PING: $(printf '%s' "$out" | tail -n 1)"
                return 1
            fi
        else
            _orderly_log "redis-cli not installed; not checking REDIS_URL"
        fi
        export REDIS_URL
        _orderly_log "Redis: using REDIS_URL $(_orderly_redact "$REDIS_URL")"
        return 0
    fi

    local dir=$ORDERLY_LOCAL_DIR/redis
    local pidfile=$dir/redis.pid log=$dir/redis.log pid=''
    mkdir -p "$dir" || { _orderly_err "cannot create $dir"; return 1; }
    _ORDERLY_REDIS_PIDFILE=$pidfile
    if [[ -f $pidfile ]]; then
        pid=$(cat "$pidfile" 2>/dev/null) || pid=''
        _orderly_pid_is "$pid" redis || { rm -f "$pidfile"; pid=''; }
    fi

    if [[ -n $pid ]]; then
        # Already running from an earlier run: reuse (and leave running), if it is on our port.
        if ! _orderly_redis_ping "$port"; then
            _orderly_err "the private redis-server (pid $pid, $pidfile) does not answer on 127.0.0.1:$port; stop it (kill $pid) or set ORDERLY_REDIS_PORT to its port"
            return 1
        fi
        _orderly_log "Redis: reusing the private server on 127.0.0.1:$port (pid $pid)"
    else
        if _orderly_port_open "$port"; then
            _orderly_err "port $port is already used by another server; set ORDERLY_REDIS_PORT to a free port (or REDIS_URL to use that server)"
            return 1
        fi
        _orderly_log "Redis: starting the private server on 127.0.0.1:$port (log: $log)"
        _ORDERLY_REDIS_STARTED=1
        # No persistence: this is a cache/queue for dev and tests only.
        if ! "$REDIS_SERVER_BIN" --bind 127.0.0.1 --port "$port" --dir "$dir" \
            --save '' --appendonly no --daemonize yes --supervised no \
            --pidfile "$pidfile" --logfile "$log" </dev/null >/dev/null 2>&1; then
            _orderly_tail "$log"
            _orderly_err "redis-server did not start (see $log)"
            return 1
        fi
        local i
        for ((i = 0; i < 100; i++)); do _orderly_redis_ping "$port" && break; sleep 0.2; done
        if ! _orderly_redis_ping "$port"; then
            _orderly_tail "$log"
            _orderly_err "redis-server did not answer on 127.0.0.1:$port within 20 s (see $log)"
            return 1
        fi
    fi
    export REDIS_URL=$private_url
    _orderly_log "Redis: REDIS_URL=$REDIS_URL (REDIS_SERVER_BIN=$REDIS_SERVER_BIN)"
}

# ---------------------------------------------------------------------------------------------
# Redis Cluster (tests only): three masters, no replicas, on loopback. Each node keeps its
# nodes.conf and log in $ORDERLY_LOCAL_DIR/redis-cluster/<port>; nothing is persisted.
# ---------------------------------------------------------------------------------------------

# CLUSTER INFO of 127.0.0.1:$1 says the cluster serves every slot.
_orderly_cluster_ok() {
    timeout 5 redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

orderly_ensure_redis_cluster() {
    local -a ports
    read -r -a ports <<<"$ORDERLY_REDIS_CLUSTER_PORTS"
    local nodes='' port
    for port in "${ports[@]}"; do nodes+="${nodes:+,}127.0.0.1:$port"; done
    local private_url="redis+cluster://$nodes"

    if [[ -n ${ORDERLY_TEST_REDIS_CLUSTER_URL:-} && $ORDERLY_TEST_REDIS_CLUSTER_URL != "$private_url" ]]; then
        export ORDERLY_TEST_REDIS_CLUSTER_URL
        _orderly_log "Redis Cluster: using ORDERLY_TEST_REDIS_CLUSTER_URL $(_orderly_redact "$ORDERLY_TEST_REDIS_CLUSTER_URL")"
        return 0
    fi
    ((${#ports[@]} >= 3)) || { _orderly_err "ORDERLY_REDIS_CLUSTER_PORTS needs three ports, got '$ORDERLY_REDIS_CLUSTER_PORTS'"; return 1; }
    [[ -n ${REDIS_SERVER_BIN:-} ]] || { _orderly_err "orderly_ensure_redis_cluster needs REDIS_SERVER_BIN (call orderly_ensure_redis first)"; return 1; }
    # redis-cli creates the cluster; Debian ships it in redis-tools.
    if ! command -v redis-cli >/dev/null 2>&1; then
        orderly_install_packages redis-tools || return 1
    fi

    local base=$ORDERLY_LOCAL_DIR/redis-cluster running=0 pid dir i
    _ORDERLY_REDIS_CLUSTER_DIR=$base
    for port in "${ports[@]}"; do
        pid=$(cat "$base/$port/redis.pid" 2>/dev/null) || pid=''
        _orderly_pid_is "$pid" redis && running=$((running + 1))
    done
    if ((running == ${#ports[@]})) && _orderly_cluster_ok "${ports[0]}"; then
        _orderly_log "Redis Cluster: reusing the private cluster on $nodes"
        export ORDERLY_TEST_REDIS_CLUSTER_URL=$private_url
        return 0
    fi
    if ((running > 0)); then
        _orderly_err "a private Redis Cluster in $base is partly running or unhealthy; stop its nodes (the pids in $base/*/redis.pid) and retry"
        return 1
    fi

    for port in "${ports[@]}"; do
        if _orderly_port_open "$port"; then
            _orderly_err "port $port is already used by another server; set ORDERLY_REDIS_CLUSTER_PORTS to three free ports (or ORDERLY_TEST_REDIS_CLUSTER_URL to use that cluster)"
            return 1
        fi
    done
    _orderly_log "Redis Cluster: starting three masters on $nodes (logs: $base/<port>/redis.log)"
    _ORDERLY_REDIS_CLUSTER_STARTED=1
    for port in "${ports[@]}"; do
        dir=$base/$port
        mkdir -p "$dir" || { _orderly_err "cannot create $dir"; return 1; }
        # A fresh cluster every start: an old nodes.conf would name nodes that are gone.
        rm -f "$dir/nodes.conf" "$dir/redis.pid"
        if ! "$REDIS_SERVER_BIN" --bind 127.0.0.1 --port "$port" --dir "$dir" \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
            --save '' --appendonly no --daemonize yes --supervised no \
            --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1; then
            _orderly_tail "$dir/redis.log"
            _orderly_err "redis-server (cluster node $port) did not start (see $dir/redis.log)"
            return 1
        fi
    done
    for port in "${ports[@]}"; do
        for ((i = 0; i < 100; i++)); do _orderly_redis_ping "$port" && break; sleep 0.2; done
        _orderly_redis_ping "$port" || { _orderly_tail "$base/$port/redis.log"; _orderly_err "cluster node $port did not answer within 20 s"; return 1; }
    done
    local -a addrs=()
    for port in "${ports[@]}"; do addrs+=("127.0.0.1:$port"); done
    local out
    if ! out=$(timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes 2>&1 </dev/null); then
        printf '%s\n' "$out" | tail -n 20 >&2
        _orderly_err "redis-cli --cluster create failed"
        return 1
    fi
    # Every node must see every slot served before a client gets a consistent map.
    for ((i = 0; i < 150; i++)); do
        running=0
        for port in "${ports[@]}"; do _orderly_cluster_ok "$port" && running=$((running + 1)); done
        ((running == ${#ports[@]})) && break
        sleep 0.2
    done
    if ((running != ${#ports[@]})); then
        timeout 5 redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster info >&2 || true
        _orderly_err "the Redis Cluster on $nodes did not reach cluster_state:ok within 30 s"
        return 1
    fi
    export ORDERLY_TEST_REDIS_CLUSTER_URL=$private_url
    _orderly_log "Redis Cluster: ORDERLY_TEST_REDIS_CLUSTER_URL=$ORDERLY_TEST_REDIS_CLUSTER_URL"
}

# ---------------------------------------------------------------------------------------------
# Stop what this shell started (never servers named by a pre-set URL, never reused ones).
# Always returns 0 so that it is safe in EXIT traps; problems are reported as warnings.
# ---------------------------------------------------------------------------------------------
orderly_stop_services() {
    # No postmaster.pid: already stopped (e.g. Ctrl-C reached the postmaster), nothing to do.
    if [[ $_ORDERLY_PG_STARTED == 1 && -f $_ORDERLY_PG_DATA/postmaster.pid ]]; then
        _orderly_log "PostgreSQL: stopping the private server"
        _orderly_as_pg "$_ORDERLY_PG_BIN/pg_ctl" stop -D "$_ORDERLY_PG_DATA" -m fast -w -t 60 -s >/dev/null \
            || _orderly_log "warning: could not stop PostgreSQL in $_ORDERLY_PG_DATA"
    fi
    _ORDERLY_PG_STARTED=0
    if [[ $_ORDERLY_REDIS_STARTED == 1 ]]; then
        _orderly_log "Redis: stopping the private server"
        local pid='' i
        pid=$(cat "$_ORDERLY_REDIS_PIDFILE" 2>/dev/null) || pid=''
        if command -v redis-cli >/dev/null 2>&1; then
            timeout 10 redis-cli -h 127.0.0.1 -p "$ORDERLY_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        fi
        if _orderly_pid_is "$pid" redis; then
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do _orderly_pid_is "$pid" redis || break; sleep 0.2; done
            if _orderly_pid_is "$pid" redis; then
                _orderly_log "warning: redis-server (pid $pid) ignored SIGTERM; killing it"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        rm -f "$_ORDERLY_REDIS_PIDFILE"
        _ORDERLY_REDIS_STARTED=0
    fi
    if [[ $_ORDERLY_REDIS_CLUSTER_STARTED == 1 ]]; then
        _orderly_log "Redis Cluster: stopping the private cluster"
        local port cpid i
        for port in $ORDERLY_REDIS_CLUSTER_PORTS; do
            cpid=$(cat "$_ORDERLY_REDIS_CLUSTER_DIR/$port/redis.pid" 2>/dev/null) || cpid=''
            timeout 10 redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
            if _orderly_pid_is "$cpid" redis; then
                kill -TERM "$cpid" 2>/dev/null || true
                for ((i = 0; i < 50; i++)); do _orderly_pid_is "$cpid" redis || break; sleep 0.2; done
                _orderly_pid_is "$cpid" redis && kill -KILL "$cpid" 2>/dev/null
            fi
            rm -f "$_ORDERLY_REDIS_CLUSTER_DIR/$port/redis.pid"
        done
        _ORDERLY_REDIS_CLUSTER_STARTED=0
    fi
    return 0
}
