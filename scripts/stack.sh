#!/usr/bin/env bash
# keel local stack: a private PostgreSQL cluster and a NATS server with JetStream, both under .dev/.
#
#   bash scripts/stack.sh install   install postgresql / nats-server with apt, only if missing
#   bash scripts/stack.sh up        start both (installing first if needed); a no-op when already up
#   bash scripts/stack.sh down      stop both (data is kept; `up` brings it back)
#   bash scripts/stack.sh status    what runs where; exit 0 only when both are up
#   bash scripts/stack.sh env       `export` lines for tests and tools: eval "$(bash scripts/stack.sh env)"
#   bash scripts/stack.sh clean     down, then delete every byte of local state (.dev/)
#
# Environment: KEEL_PG_PORT (55432), KEEL_NATS_PORT (54222), KEEL_NATS_MONITOR_PORT (58222),
# KEEL_DEV_DIR (<repo>/.dev), KEEL_PG_BINDIR (found by itself), KEEL_PG_OS_USER (when run as root:
# the unprivileged user that owns and runs the cluster; `postgres` if it exists, else `keel`).
#
# Nothing here touches a system-wide postgres or nats: other ports, own data dirs, own socket dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV="${KEEL_DEV_DIR:-$ROOT/.dev}"

PG_HOST=127.0.0.1
PG_PORT="${KEEL_PG_PORT:-55432}"
PG_SUPERUSER=keel
PG_DIR="$DEV/pg" # data/ (PGDATA), run/ (unix socket), postgres.log

NATS_HOST=127.0.0.1
NATS_PORT="${KEEL_NATS_PORT:-54222}"
NATS_MON_PORT="${KEEL_NATS_MONITOR_PORT:-58222}"
NATS_DIR="$DEV/nats" # the server appends jetstream/
NATS_LOG="$DEV/nats.log"
NATS_PID="$DEV/nats.pid"

READY_TIMEOUT="${KEEL_STACK_TIMEOUT:-60}"

say() { printf '==> %s\n' "$*"; }
warn() { printf '==> warning: %s\n' "$*" >&2; }
die() {
    printf '==> error: %s\n' "$*" >&2
    exit 1
}
rel() { # a path shown relative to the repo when it lies inside it
    case "$1" in
    "$ROOT"/*) printf '%s' "${1#"$ROOT"/}" ;;
    *) printf '%s' "$1" ;;
    esac
}
is_root() { [ "$(id -u)" = 0 ]; }

# ---------------------------------------------------------------------------------------------
# Generic helpers

# Is something accepting TCP connections on 127.0.0.1:$1 ?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# GET http://127.0.0.1:$1$2 and print "<status code>\n<body>" ("000" when nothing answers). curl
# if present, else plain bash, so a fresh machine needs nothing extra.
http_get() {
    local port="$1" path="$2" out line
    if command -v curl >/dev/null 2>&1; then
        out="$(curl -s -m 3 -w '\n%{http_code}' "http://127.0.0.1:$port$path" 2>/dev/null || true)"
        printf '%s\n%s' "${out##*$'\n'}" "${out%$'\n'*}"
        return 0
    fi
    if ! { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
        printf '000\n'
        return 0
    fi
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
    out="$(timeout 3 cat <&3 || true)"
    exec 3<&- 3>&-
    line="${out%%$'\r'*}"
    line="${line#HTTP/* }"
    printf '%s\n%s' "${line:0:3}" "${out#*$'\r\n\r\n'}"
}
http_status() { http_get "$1" "$2" | head -n1; }

# ---------------------------------------------------------------------------------------------
# PostgreSQL binaries and the unprivileged user that runs them

pg_bindir_candidates() {
    [ -n "${KEEL_PG_BINDIR:-}" ] && printf '%s\n' "$KEEL_PG_BINDIR"
    if command -v pg_config >/dev/null 2>&1; then pg_config --bindir 2>/dev/null || true; fi
    # Debian/Ubuntu layout, newest major first.
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -V -r || true
    if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; fi
}

# Sets PG_BIN to a directory holding initdb, pg_ctl and postgres. An existing cluster pins the
# major version: its data files only open with the binaries that created them.
find_pg_bindir() {
    local want="" dir
    if [ -s "$PG_DIR/data/PG_VERSION" ]; then
        want="$(cat "$PG_DIR/data/PG_VERSION")"
        if [ -x "/usr/lib/postgresql/$want/bin/postgres" ] && [ -z "${KEEL_PG_BINDIR:-}" ]; then
            PG_BIN="/usr/lib/postgresql/$want/bin"
            return 0
        fi
    fi
    while IFS= read -r dir; do
        [ -n "$dir" ] || continue
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            if [ -n "$want" ] && ! "$dir/postgres" --version | grep -q " $want\."; then
                continue
            fi
            PG_BIN="$dir"
            return 0
        fi
    done < <(pg_bindir_candidates)
    if [ -n "$want" ]; then
        die "the cluster in $(rel "$PG_DIR/data") is PostgreSQL $want, but no PostgreSQL $want binaries were found; install them or start over with 'make clean-dev'"
    fi
    return 1
}

# initdb/postgres refuse to run as root. As root, the cluster belongs to an unprivileged system
# user (`postgres` when the package created it, else a `keel` system user made here); as anyone
# else, it simply belongs to the caller.
PG_OS_USER=""
pick_pg_os_user() { # `create`: make the user when it does not exist yet
    is_root || return 0
    if [ -z "$PG_OS_USER" ]; then
        PG_OS_USER="${KEEL_PG_OS_USER:-}"
        if [ -z "$PG_OS_USER" ]; then
            if getent passwd postgres >/dev/null; then PG_OS_USER=postgres; else PG_OS_USER=keel; fi
        fi
    fi
    if [ "${1:-}" = create ] && ! getent passwd "$PG_OS_USER" >/dev/null; then
        say "creating system user '$PG_OS_USER' to own the dev postgres cluster (postgres will not run as root)"
        if command -v useradd >/dev/null 2>&1; then
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$PG_OS_USER"
        else
            adduser --system --group --no-create-home --home /nonexistent "$PG_OS_USER"
        fi
    fi
}

# Run a command as the cluster's owner, from / so an unreadable working directory never matters.
as_pg() {
    if is_root; then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u "$PG_OS_USER" -- "$@")
        else
            (cd / && setpriv --reuid="$PG_OS_USER" --regid="$PG_OS_USER" --init-groups -- "$@")
        fi
    else
        (cd / && "$@")
    fi
}

# Sets PG_REAL (the real path of .dev/pg) and the paths derived from it, creating the directory
# when asked. As root, if the cluster user cannot reach .dev (e.g. a clone under /root, mode 700),
# the cluster lives under /var/lib/keel-dev/<hash> instead, with .dev/pg a symlink to it.
pg_paths() {
    local create="${1:-}"
    if [ "$create" = create ] && [ ! -e "$PG_DIR" ] && [ ! -L "$PG_DIR" ]; then
        mkdir -p "$DEV"
        if is_root; then
            chmod 0755 "$DEV"
            mkdir -m 0700 "$PG_DIR"
            chown "$PG_OS_USER:" "$PG_DIR"
            if ! as_pg test -w "$PG_DIR"; then
                rmdir "$PG_DIR"
                local alt
                alt="/var/lib/keel-dev/$(printf '%s' "$DEV" | sha1sum | cut -c1-12)/pg"
                rm -rf "$alt" # a leftover of an earlier `clean` of the same checkout
                mkdir -p "$alt"
                chmod 0755 /var/lib/keel-dev "$(dirname "$alt")"
                chmod 0700 "$alt"
                chown "$PG_OS_USER:" "$alt"
                ln -s "$alt" "$PG_DIR"
                say "note: user '$PG_OS_USER' cannot reach $(rel "$DEV"); the cluster lives in $alt (linked from .dev/pg)"
            fi
        else
            mkdir -m 0700 "$PG_DIR"
        fi
    fi
    PG_REAL="$(readlink -f "$PG_DIR" 2>/dev/null || printf '%s' "$PG_DIR")"
    if [ "$create" = create ] && is_root && [ "$(stat -c %U "$PG_REAL")" != "$PG_OS_USER" ]; then
        chown -R "$PG_OS_USER:" "$PG_REAL"
    fi
    PGDATA_DIR="$PG_REAL/data"
    PG_LOG="$PG_REAL/postgres.log"
    PG_SOCK_DIR="$PG_REAL/run"
    # A unix socket path is limited to 107 bytes; a deep checkout gets a short private dir instead.
    if [ "${#PG_SOCK_DIR}" -gt 90 ]; then
        PG_SOCK_DIR="/tmp/keel-pg-$(printf '%s' "$PG_REAL" | sha1sum | cut -c1-12)"
    fi
}

pg_running() { # our cluster's postmaster is alive
    [ -f "$PGDATA_DIR/postmaster.pid" ] || return 1
    as_pg "$PG_BIN/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1
}

pg_pid() { head -n1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true; }
pg_running_port() { sed -n 4p "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true; }

pg_isready_bin() {
    if [ -x "$PG_BIN/pg_isready" ]; then printf '%s' "$PG_BIN/pg_isready"; else command -v pg_isready || true; fi
}
psql_bin() {
    if [ -x "$PG_BIN/psql" ]; then printf '%s' "$PG_BIN/psql"; else command -v psql || true; fi
}

pg_ready() {
    local isready
    isready="$(pg_isready_bin)"
    if [ -n "$isready" ]; then
        "$isready" -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres -t 2
    else
        port_open "$PG_PORT"
    fi
}

psql_keel() { # psql as the keel superuser over TCP
    "$(psql_bin)" -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" "$@"
}

pg_write_config() {
    # Rewritten on every start so the settings below always match this script.
    as_pg tee "$PGDATA_DIR/keel-dev.conf" >/dev/null <<EOF
# Written by scripts/stack.sh on every 'up'; local edits are overwritten.
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK_DIR'

# Tuning for a disposable dev/test cluster ('make clean-dev' rebuilds it from nothing):
# - tests run in parallel, each with its own database/schema and its own connection pool, and
#   every service of 'make run' holds a pool too: allow many connections;
# - durability is traded for speed: no fsync, no waiting for the WAL flush at commit, no full-page
#   images. A crash of the machine (not of postgres) can corrupt this cluster; that is acceptable
#   here and never acceptable in production, where none of this applies.
max_connections = 500
fsync = off
synchronous_commit = off
full_page_writes = off

log_line_prefix = '%m [%p] %q%u@%d '
EOF
}

pg_init() {
    [ -s "$PGDATA_DIR/PG_VERSION" ] && return 0
    say "initialising postgres cluster in $(rel "$PG_DIR")/data (superuser '$PG_SUPERUSER', PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'))"
    as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U "$PG_SUPERUSER" -A trust -E UTF8 --locale=C \
        --no-sync --no-instructions >"$PG_REAL/initdb.log" 2>&1 ||
        {
            cat "$PG_REAL/initdb.log" >&2
            die "initdb failed"
        }
    # Trust, but only over the private unix socket (its directory is mode 0700) and 127.0.0.1.
    as_pg tee "$PGDATA_DIR/pg_hba.conf" >/dev/null <<'EOF'
# keel dev cluster (scripts/stack.sh): trust auth, reachable only from this machine.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF
    printf "\n# keel dev settings (scripts/stack.sh)\ninclude_if_exists = 'keel-dev.conf'\n" |
        as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
}

pg_up() {
    local other
    pick_pg_os_user create
    pg_paths create
    find_pg_bindir || die "no PostgreSQL server binaries found (run: bash scripts/stack.sh install)"

    if pg_running; then
        local running_port
        running_port="$(pg_running_port)"
        if [ -n "$running_port" ] && [ "$running_port" != "$PG_PORT" ]; then
            die "postgres from $(rel "$PG_DIR") already runs on port $running_port, not $PG_PORT; run 'bash scripts/stack.sh down' first"
        fi
        if wait_pg_ready 20; then
            say "postgres already running on $PG_HOST:$PG_PORT (pid $(pg_pid)); nothing to do"
            pg_ensure_db
            return 0
        fi
        die "postgres (pid $(pg_pid)) runs but does not answer on $PG_HOST:$PG_PORT; see $(rel "$PG_LOG")"
    fi

    if port_open "$PG_PORT"; then
        # Another checkout's keel stack may already serve this port: reuse it if it is one.
        if pg_ready && [ -n "$(psql_bin)" ] &&
            other="$(psql_keel -d postgres -Atc 'show data_directory' 2>/dev/null)"; then
            say "postgres on $PG_HOST:$PG_PORT is another keel dev cluster ($other); using it"
            return 0
        fi
        die "port $PG_PORT is taken by something that is not a keel dev postgres; pick another with KEEL_PG_PORT=<port>"
    fi

    pg_init
    as_pg mkdir -p "$PG_SOCK_DIR"
    as_pg chmod 0700 "$PG_SOCK_DIR"
    pg_write_config
    say "starting postgres on $PG_HOST:$PG_PORT (log: $(rel "$PG_DIR")/postgres.log)"
    if ! as_pg "$PG_BIN/pg_ctl" start -D "$PGDATA_DIR" -l "$PG_LOG" -w -t "$READY_TIMEOUT" -s; then
        tail -n 30 "$PG_LOG" >&2 || true
        die "postgres did not start; see $(rel "$PG_DIR")/postgres.log"
    fi
    wait_pg_ready "$READY_TIMEOUT" || {
        tail -n 30 "$PG_LOG" >&2 || true
        die "postgres started but is not accepting connections on $PG_HOST:$PG_PORT"
    }
    pg_ensure_db
    say "postgres ready on $PG_HOST:$PG_PORT (pid $(pg_pid), superuser '$PG_SUPERUSER', trust auth)"
}

wait_pg_ready() {
    local deadline=$((SECONDS + $1))
    until pg_ready; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.3
    done
}

# A `keel` database, so `psql -h 127.0.0.1 -p 55432 -U keel` lands somewhere useful. Tests create
# their own databases from the `postgres` one.
pg_ensure_db() {
    [ -n "$(psql_bin)" ] || return 0
    if [ "$(psql_keel -d postgres -Atc "select 1 from pg_database where datname = 'keel'")" != 1 ]; then
        psql_keel -d postgres -c 'create database keel' >/dev/null
    fi
}

pg_down() {
    pick_pg_os_user
    pg_paths
    if [ ! -f "$PGDATA_DIR/postmaster.pid" ]; then
        say "postgres not running"
        return 0
    fi
    find_pg_bindir || die "no PostgreSQL binaries to stop the cluster with"
    if pg_running; then
        say "stopping postgres (pid $(pg_pid))"
        as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t "$READY_TIMEOUT" -s
        say "postgres stopped (data kept in $(rel "$PG_DIR")/data)"
    else
        say "postgres not running"
    fi
}

# ---------------------------------------------------------------------------------------------
# NATS

nats_pid() { cat "$NATS_PID" 2>/dev/null || true; }

nats_running() { # the pid file names a live nats-server
    local pid
    pid="$(nats_pid)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q nats-server
}

# Healthy = /healthz answers 200 and JetStream is really on: nats 2.9 answers 200 to
# /healthz?js-enabled-only=true even with JetStream off, so /jsz must also show a store dir.
nats_healthy() {
    [ "$(http_status "$NATS_MON_PORT" '/healthz?js-enabled-only=true')" = 200 ] || return 1
    case "$(http_get "$NATS_MON_PORT" /jsz)" in
    *'"disabled": true'*) return 1 ;;
    *'"store_dir"'*) return 0 ;;
    *) return 1 ;;
    esac
}

wait_nats_healthy() {
    local deadline=$((SECONDS + $1))
    until nats_healthy; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        # Gave up early if the server exited (the launcher pid and the pid file's both gone).
        if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && ! nats_running; then
            sleep 0.5
            nats_running || return 1
        fi
        sleep 0.2
    done
}

nats_up() {
    command -v nats-server >/dev/null 2>&1 || die "nats-server not found (run: bash scripts/stack.sh install)"
    if nats_running; then
        if wait_nats_healthy 20; then
            say "nats already running on $NATS_HOST:$NATS_PORT (pid $(nats_pid), JetStream on); nothing to do"
            return 0
        fi
        die "nats-server (pid $(nats_pid)) runs but its health check fails; see $(rel "$NATS_LOG")"
    fi
    if port_open "$NATS_PORT" || port_open "$NATS_MON_PORT"; then
        if port_open "$NATS_PORT" && nats_healthy; then
            say "nats on $NATS_HOST:$NATS_PORT is another JetStream server (not started from here); using it"
            return 0
        fi
        die "port $NATS_PORT or $NATS_MON_PORT is taken by something that is not a JetStream nats; pick others with KEEL_NATS_PORT / KEEL_NATS_MONITOR_PORT"
    fi
    mkdir -p "$NATS_DIR"
    rm -f "$NATS_PID"
    say "starting nats-server with JetStream on $NATS_HOST:$NATS_PORT (monitor :$NATS_MON_PORT, store $(rel "$NATS_DIR"), log $(rel "$NATS_LOG"))"
    printf '\n---- %s scripts/stack.sh up\n' "$(date '+%F %T')" >>"$NATS_LOG"
    # setsid: its own session, so it outlives this shell and the terminal's signals.
    setsid nohup nats-server -js -sd "$NATS_DIR" -a "$NATS_HOST" -p "$NATS_PORT" -m "$NATS_MON_PORT" \
        -l "$NATS_LOG" -P "$NATS_PID" </dev/null >>"$NATS_LOG" 2>&1 &
    local launched=$!
    if ! wait_nats_healthy "$READY_TIMEOUT" "$launched"; then
        tail -n 20 "$NATS_LOG" >&2 || true
        kill "$launched" 2>/dev/null || true
        die "nats-server did not become healthy; see $(rel "$NATS_LOG")"
    fi
    [ -s "$NATS_PID" ] || echo "$launched" >"$NATS_PID"
    say "nats ready on $NATS_HOST:$NATS_PORT (pid $(nats_pid), JetStream on, monitor http://$NATS_HOST:$NATS_MON_PORT)"
}

nats_down() {
    if ! nats_running; then
        rm -f "$NATS_PID"
        say "nats not running"
        return 0
    fi
    local pid deadline
    pid="$(nats_pid)"
    say "stopping nats (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true # graceful: JetStream flushes its store
    deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            warn "nats did not stop within 20 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$NATS_PID"
    say "nats stopped (JetStream data kept in $(rel "$NATS_DIR"))"
}

# ---------------------------------------------------------------------------------------------
# Subcommands

cmd_install() {
    local pkgs=() sudo=""
    PG_BIN=""
    if ! find_pg_bindir 2>/dev/null; then pkgs+=(postgresql); fi
    command -v nats-server >/dev/null 2>&1 || pkgs+=(nats-server)
    command -v make >/dev/null 2>&1 || pkgs+=(make)
    # identity's dev signing key (`make run`) is made with openssl.
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    # The Python stub check and the API fuzz run use a venv; Debian splits ensurepip out.
    command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
    python3 -c 'import ensurepip' >/dev/null 2>&1 || pkgs+=(python3-venv)
    if [ "${#pkgs[@]}" -eq 0 ]; then
        say "postgres ($PG_BIN) and nats-server ($(command -v nats-server)) already installed"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${pkgs[*]} and no apt-get here; install them with your package manager"
    if ! is_root; then
        command -v sudo >/dev/null 2>&1 || die "missing ${pkgs[*]}; installing needs root (or sudo)"
        sudo="sudo"
    fi
    say "installing ${pkgs[*]} with apt-get"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
    PG_BIN=""
    find_pg_bindir || die "postgresql installed, but no initdb found under /usr/lib/postgresql/*/bin"
    command -v nats-server >/dev/null 2>&1 || die "nats-server installed, but not on PATH"
    say "installed: postgres binaries in $PG_BIN, $(nats-server --version)"
}

needs_install() {
    if ! command -v nats-server >/dev/null 2>&1; then return 0; fi
    if ! command -v openssl >/dev/null 2>&1; then return 0; fi
    PG_BIN=""
    ! find_pg_bindir 2>/dev/null
}

cmd_up() {
    if needs_install; then cmd_install; fi
    mkdir -p "$DEV"
    pg_up
    nats_up
}

cmd_down() {
    nats_down
    pg_down
}

cmd_status() {
    local ok=0 pg_state nats_state
    pick_pg_os_user
    pg_paths
    PG_BIN=""
    if find_pg_bindir 2>/dev/null && pg_running; then
        if pg_ready; then pg_state="running (pid $(pg_pid))"; else
            pg_state="starting or unhealthy (pid $(pg_pid))"
            ok=1
        fi
    elif [ -n "${PG_BIN:-}" ] && port_open "$PG_PORT" && pg_ready; then
        pg_state="served by another keel dev cluster"
    else
        pg_state="stopped"
        ok=1
    fi
    if nats_running; then
        if nats_healthy; then nats_state="running (pid $(nats_pid), JetStream on)"; else
            nats_state="running but unhealthy (pid $(nats_pid))"
            ok=1
        fi
    elif port_open "$NATS_PORT" && nats_healthy; then
        nats_state="served by another JetStream server"
    else
        nats_state="stopped"
        ok=1
    fi
    printf '%-9s %s\n' postgres "$pg_state"
    printf '%-9s   url   postgres://%s@%s:%s/postgres\n' "" "$PG_SUPERUSER" "$PG_HOST" "$PG_PORT"
    printf '%-9s   data  %s   log %s\n' "" "$(rel "$PG_DIR")/data" "$(rel "$PG_DIR")/postgres.log"
    printf '%-9s %s\n' nats "$nats_state"
    printf '%-9s   url   nats://%s:%s   monitor http://%s:%s (/jsz, /healthz)\n' "" "$NATS_HOST" "$NATS_PORT" "$NATS_HOST" "$NATS_MON_PORT"
    printf '%-9s   store %s   log %s\n' "" "$(rel "$NATS_DIR")" "$(rel "$NATS_LOG")"
    return "$ok"
}

cmd_env() {
    cat <<EOF
export KEEL_PG_PORT=$PG_PORT
export KEEL_NATS_PORT=$NATS_PORT
export KEEL_NATS_MONITOR_PORT=$NATS_MON_PORT
export KEEL_TEST_PG_URL=postgres://$PG_SUPERUSER@$PG_HOST:$PG_PORT/postgres
export KEEL_TEST_NATS_URL=nats://$NATS_HOST:$NATS_PORT
export KEEL_DEV_PG_URL=postgres://$PG_SUPERUSER@$PG_HOST:$PG_PORT/keel
export KEEL_DEV_NATS_URL=nats://$NATS_HOST:$NATS_PORT
export KEEL_DEV_NATS_MONITOR_URL=http://$NATS_HOST:$NATS_MON_PORT
EOF
}

cmd_clean() {
    case "$DEV" in
    "" | / | "$ROOT" | "$HOME") die "refusing to delete KEEL_DEV_DIR='$DEV'" ;;
    esac
    cmd_down
    pick_pg_os_user
    local target=""
    [ -L "$PG_DIR" ] && target="$(readlink -f "$PG_DIR")"
    rm -rf "$DEV"
    if [ -n "$target" ]; then
        rm -rf "$target"
        rmdir "$(dirname "$target")" 2>/dev/null || true
    fi
    say "removed $(rel "$DEV")${target:+ and $target}"
}

# Each test creates a database `test_<id>` and leaves it for inspection; drop the previous run's
# before a new one so the disposable cluster does not grow without bound.
cmd_prune_test_dbs() {
    local dbs
    PG_BIN=""
    find_pg_bindir 2>/dev/null || true
    dbs=$(psql_keel -d postgres -At -c "SELECT datname FROM pg_database WHERE datname LIKE 'test\_%'")
    [ -n "$dbs" ] || return 0
    say "dropping up to $(printf '%s\n' "$dbs" | wc -l) idle test databases from earlier runs"
    printf '%s\n' "$dbs" | while read -r db; do
        # Without FORCE: a database still in use (a test running elsewhere) is left alone.
        psql_keel -d postgres -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true
    done
    # Test roles (t<id>_<schema>) own nothing once their databases are gone.
    psql_keel -d postgres -At -c "SELECT rolname FROM pg_roles WHERE rolname ~ '^t[0-9a-f]{12}_'" |
        while read -r role; do psql_keel -d postgres -c "DROP ROLE IF EXISTS \"$role\"" >/dev/null || true; done
}

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
install) cmd_install ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
clean) cmd_clean ;;
prune-test-dbs) cmd_prune_test_dbs ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
