#!/usr/bin/env bash
# Starts and stops the keel service binaries on this machine (used by `make run` / `make stop`).
#
#   bash scripts/services.sh start    start every service that has config/<service>.yaml, in the
#                                     background; services already running are left alone
#   bash scripts/services.sh stop     stop them (SIGTERM: they drain, then exit; SIGKILL after 30 s)
#   bash scripts/services.sh status   the table of what runs where
#   bash scripts/services.sh replicas <svc> <n>   run <n> instances of <svc> in all: replica i
#                                     (2..n) listens on the config's gRPC and admin ports + 100*(i-1)
#   bash scripts/services.sh replicas-stop <svc>  stop the extra replicas of <svc>
#
# A service <svc> is the directory services/<svc>; its binary is target/debug/keel-<svc>, started as
# `target/debug/keel-<svc> --config config/<svc>.yaml`, logging to .dev/logs/<svc>.log, its pid in
# .dev/pids/<svc>.pid. Environment: KEEL_DEV_DIR (<repo>/.dev), CARGO_TARGET_DIR (<repo>/target),
# KEEL_PROFILE_DIR (debug), KEEL_READY_TIMEOUT (seconds to wait for /readyz; 90).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV="${KEEL_DEV_DIR:-$ROOT/.dev}"
LOGS="$DEV/logs"
PIDS="$DEV/pids"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
BIN_DIR="$TARGET/${KEEL_PROFILE_DIR:-debug}"
READY_TIMEOUT="${KEEL_READY_TIMEOUT:-90}"
STOP_TIMEOUT=30
GATEWAY_URL="http://127.0.0.1:8080"

# Start order: the gateway last, after the services it routes to. Unknown services go in between.
ORDER=(identity tenancy billing delivery marketplace ai-gateway notifications)
LAST=(edge-gateway)

say() { printf '==> %s\n' "$*"; }
warn() { printf '==> warning: %s\n' "$*" >&2; }
rel() {
    case "$1" in
    "$ROOT"/*) printf '%s' "${1#"$ROOT"/}" ;;
    *) printf '%s' "$1" ;;
    esac
}

# Every service directory, in start order.
all_services() {
    local svc seen=" "
    for svc in "${ORDER[@]}"; do
        [ -d "$ROOT/services/$svc" ] && printf '%s\n' "$svc" && seen+="$svc "
    done
    for svc in "${LAST[@]}"; do seen+="$svc "; done
    for dir in "$ROOT"/services/*/; do
        [ -d "$dir" ] || continue
        svc="$(basename "$dir")"
        case "$seen" in *" $svc "*) ;; *) printf '%s\n' "$svc" ;; esac
    done
    for svc in "${LAST[@]}"; do
        [ -d "$ROOT/services/$svc" ] && printf '%s\n' "$svc"
    done
    return 0
}

configured_services() {
    local svc
    while IFS= read -r svc; do
        [ -f "$ROOT/config/$svc.yaml" ] && printf '%s\n' "$svc"
    done < <(all_services)
    return 0
}

pidfile() { printf '%s' "$PIDS/$1.pid"; }

# The live pid of <svc> from its pid file, or nothing. A recycled pid that now belongs to some other
# program does not count.
service_pid() {
    local pid
    pid="$(cat "$(pidfile "$1")" 2>/dev/null || true)"
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "keel-$1" || return 0
    printf '%s' "$pid"
}

# `listen:` of a top-level section (grpc, admin) of a service's YAML config, e.g. 127.0.0.1:50051.
config_listen() {
    awk -v want="$2" '
        /^[^[:space:]#][^:]*:/ { section = $0; sub(/:.*/, "", section); next }
        section == want && /^[[:space:]]+listen:/ {
            v = $0; sub(/^[[:space:]]+listen:[[:space:]]*/, "", v); sub(/[[:space:]]+#.*$/, "", v)
            gsub(/["\047]/, "", v); print v; exit
        }' "$ROOT/config/$1.yaml" 2>/dev/null || true
}

# host:port -> something to connect to from here (wildcard binds become loopback).
local_addr() {
    local addr="$1"
    case "$addr" in
    0.0.0.0:* | \[::\]:*) printf '127.0.0.1:%s' "${addr##*:}" ;;
    *) printf '%s' "$addr" ;;
    esac
}

http_status() { # GET http://$1$2 -> status code, "000" when nothing answers
    local hostport="$1" path="$2" line
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$hostport$path" 2>/dev/null || true
        return 0
    fi
    if ! { exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"; } 2>/dev/null; then
        printf '000'
        return 0
    fi
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$hostport" >&3
    line=""
    IFS= read -r -t 2 line <&3 || true
    exec 3<&- 3>&-
    line="${line#HTTP/* }"
    printf '%s' "${line:0:3}"
}

# The log of <svc>'s latest start only (each start appends a "---- <time> started" marker).
last_run_log() {
    awk '/^---- .* started by scripts\/services.sh$/ { n = 0; next } { buf[++n] = $0 }
         END { for (i = 1; i <= n; i++) print buf[i] }' "$LOGS/$1.log" 2>/dev/null || true
}

# Admin address worth probing for <svc>, or nothing (no admin section, or port 0 = random).
admin_probe_addr() {
    local admin
    admin="$(config_listen "$1" admin)"
    case "$admin" in "" | *:0) return 0 ;; esac
    local_addr "$admin"
}

# The role and schema each configured service connects with, created if missing (idempotent), by
# the kernel's own provisioning (keel_kernel::db::provision: LOGIN, no BYPASSRLS, owning only its
# schema), so there is one definition of what a service role may do.
provision_services() {
    local svc
    eval "$(bash "$ROOT/scripts/stack.sh" env)"
    for svc in "$@"; do
        "$BIN_DIR/keel-provision" --admin-url "$KEEL_DEV_PG_URL" --nats-admin-url "$KEEL_DEV_NATS_URL" \
            --config "$ROOT/config/$svc.yaml" |
            sed 's/^/==> /' || { warn "$svc: provisioning its database role and schema failed"; return 1; }
    done
}

# The local mail sink (crates/keel-mailsink): an SMTP server on 127.0.0.1:2525 that keeps every
# message as one .eml file under .dev/mail/, so a new user can open the verification mail and click
# through. config/notifications.yaml sends to it. Started before the services, stopped after them.
MAIL_DIR="$DEV/mail"
MAIL_LISTEN="127.0.0.1:2525"
mailsink_pid() {
    local pid
    pid="$(cat "$PIDS/mailsink.pid" 2>/dev/null || true)"
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "keel-mailsink" || return 0
    printf '%s' "$pid"
}
start_mailsink() {
    local bin="$BIN_DIR/keel-mailsink" pid
    pid="$(mailsink_pid)"
    if [ -n "$pid" ]; then
        say "mail sink already running (pid $pid); mails go to $(rel "$MAIL_DIR")/"
        return 0
    fi
    if [ ! -x "$bin" ]; then
        warn "mail sink: $(rel "$bin") does not exist; notifications cannot send email"
        return 0
    fi
    mkdir -p "$MAIL_DIR"
    printf '\n---- %s started by scripts/services.sh\n' "$(date '+%F %T')" >>"$LOGS/mailsink.log"
    (cd "$ROOT" && exec setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ \
        "$PIDS/mailsink.pid" "$bin" --listen "$MAIL_LISTEN" --dir "$MAIL_DIR" </dev/null >>"$LOGS/mailsink.log" 2>&1) &
    say "mail sink: SMTP on $MAIL_LISTEN; every mail is saved as an .eml file under $(rel "$MAIL_DIR")/ (log $(rel "$LOGS/mailsink.log"))"
}
stop_mailsink() {
    local pid
    pid="$(mailsink_pid)"
    rm -f "$PIDS/mailsink.pid"
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    say "stopped the mail sink (pid $pid)"
}

# identity: its dev signing key (Ed25519, PKCS#8 PEM), generated once under .dev/keys and listed in
# config/identity.yaml. Real deployments mount their keys from a secret; no key is ever in source.
identity_dev_key() {
    local key="$DEV/keys/identity-dev-1.pem"
    [ -f "$key" ] && return 0
    mkdir -p "$DEV/keys" && chmod 700 "$DEV/keys"
    (umask 077 && openssl genpkey -algorithm ed25519 -out "$key" 2>/dev/null) ||
        { warn "identity: cannot generate its signing key $(rel "$key") (is openssl installed?)"; return 1; }
    say "identity: generated a dev signing key $(rel "$key")"
}

cmd_start() {
    local services=() svc pid bin log started=() failed=()
    mkdir -p "$LOGS" "$PIDS"
    mapfile -t services < <(configured_services)
    if [ "${#services[@]}" -eq 0 ]; then
        say "no service has a config yet (config/<service>.yaml); nothing to start beyond the stack"
        print_table
        return 0
    fi
    local with_db=()
    for svc in "${services[@]}"; do
        if grep -q '^database:' "$ROOT/config/$svc.yaml"; then with_db+=("$svc"); fi
    done
    [ "${#with_db[@]}" -eq 0 ] || provision_services "${with_db[@]}"
    case " ${services[*]} " in *" identity "*) identity_dev_key ;; esac
    case " ${services[*]} " in *" notifications "*) start_mailsink ;; esac

    for svc in "${services[@]}"; do
        pid="$(service_pid "$svc")"
        if [ -n "$pid" ]; then
            if readlink "/proc/$pid/exe" 2>/dev/null | grep -q ' (deleted)$'; then
                say "$svc already running (pid $pid), but its binary was rebuilt since; 'make stop && make run' picks up the new one"
            else
                say "$svc already running (pid $pid); left alone"
            fi
            continue
        fi
        bin="$BIN_DIR/keel-$svc"
        if [ ! -x "$bin" ]; then
            warn "$svc: $(rel "$bin") does not exist (is it a binary crate named keel-$svc?)"
            failed+=("$svc")
            continue
        fi
        log="$LOGS/$svc.log"
        printf '\n---- %s started by scripts/services.sh\n' "$(date '+%F %T')" >>"$log"
        # Own session (setsid), so it outlives make and the terminal; it writes its own pid file.
        (cd "$ROOT" && exec setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ \
            "$(pidfile "$svc")" "$bin" --config "config/$svc.yaml" </dev/null >>"$log" 2>&1) &
        started+=("$svc")
        say "starting $svc: $(rel "$bin") --config config/$svc.yaml (log $(rel "$log"))"
    done

    # Wait for each started service: alive and /readyz = 200 when it has a fixed admin port,
    # merely alive after a moment when it has none.
    local pending=("${started[@]}") still deadline=$((SECONDS + READY_TIMEOUT)) admin
    sleep 0.5
    while [ "${#pending[@]}" -gt 0 ]; do
        still=()
        for svc in "${pending[@]}"; do
            pid="$(service_pid "$svc")"
            if [ -z "$pid" ]; then
                warn "$svc exited during start-up; last lines of $(rel "$LOGS/$svc.log"):"
                last_run_log "$svc" | tail -n 20 | sed 's/^/    /' >&2
                rm -f "$(pidfile "$svc")"
                failed+=("$svc")
                continue
            fi
            admin="$(admin_probe_addr "$svc")"
            if [ -z "$admin" ]; then
                say "$svc started (pid $pid; no fixed admin port in config/$svc.yaml, so no readiness check)"
            elif [ "$(http_status "$admin" /readyz)" = 200 ]; then
                say "$svc ready (pid $pid, http://$admin/readyz)"
            else
                still+=("$svc")
            fi
        done
        pending=("${still[@]+"${still[@]}"}")
        [ "${#pending[@]}" -gt 0 ] || break
        if [ "$SECONDS" -ge "$deadline" ]; then
            for svc in "${pending[@]}"; do
                warn "$svc runs (pid $(service_pid "$svc")) but is not ready after ${READY_TIMEOUT}s; see $(rel "$LOGS/$svc.log")"
                failed+=("$svc")
            done
            break
        fi
        sleep 0.5
    done

    print_table
    if [ "${#failed[@]}" -gt 0 ]; then
        warn "not running or not ready: ${failed[*]}"
        return 1
    fi
}

cmd_stop() {
    local svc pid pids=() names=() deadline
    mkdir -p "$PIDS"
    # Reverse start order: the gateway first, so nothing routes to a service that is going away.
    mapfile -t all < <(all_services)
    for ((i = ${#all[@]} - 1; i >= 0; i--)); do
        svc="${all[$i]}"
        pid="$(service_pid "$svc")"
        if [ -n "$pid" ]; then
            say "stopping $svc (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$svc")
        fi
        rm -f "$(pidfile "$svc")"
    done
    if [ "${#pids[@]}" -eq 0 ]; then
        say "no keel services running"
        stop_mailsink
        return 0
    fi
    deadline=$((SECONDS + STOP_TIMEOUT))
    for i in "${!pids[@]}"; do
        while kill -0 "${pids[$i]}" 2>/dev/null; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                warn "${names[$i]} (pid ${pids[$i]}) did not stop within ${STOP_TIMEOUT}s; killing it"
                kill -KILL "${pids[$i]}" 2>/dev/null || true
                break
            fi
            sleep 0.2
        done
    done
    say "stopped ${names[*]}"
    stop_mailsink
}

print_table() {
    local svc pid state grpc admin any=0
    local fmt='%-14s %-8s %-9s %-22s %-22s %s\n'
    echo
    printf "$fmt" SERVICE PID STATE GRPC ADMIN LOG
    while IFS= read -r svc; do
        any=1
        pid="$(service_pid "$svc")"
        if [ -n "$pid" ]; then state=running; else
            state=stopped
            pid=-
        fi
        if [ ! -f "$ROOT/config/$svc.yaml" ]; then state="no-config"; fi
        grpc="$(config_listen "$svc" grpc)"
        admin="$(config_listen "$svc" admin)"
        printf "$fmt" "$svc" "$pid" "$state" "${grpc:--}" "${admin:--}" "$(rel "$LOGS/$svc.log")"
    done < <(all_services)
    [ "$any" = 1 ] || echo "(no services/ directories)"
    echo
    if [ -d "$ROOT/services/edge-gateway" ] && [ -n "$(service_pid edge-gateway)" ]; then
        printf '%-14s %s   (REST/JSON; OpenAPI from the same descriptors)\n' gateway "$GATEWAY_URL"
    fi
    eval "$(bash "$ROOT/scripts/stack.sh" env)"
    printf '%-14s %s\n' postgres "$KEEL_DEV_PG_URL   (log $(rel "$DEV")/pg/postgres.log)"
    printf '%-14s %s\n' nats "$KEEL_DEV_NATS_URL   (monitor $KEEL_DEV_NATS_MONITOR_URL, log $(rel "$DEV")/nats.log)"
    printf '%-14s %s\n' admin "each service's admin port serves /healthz, /readyz, /metrics"
    if [ -n "$(mailsink_pid)" ]; then
        printf '%-14s %s\n' mail "smtp://$MAIL_LISTEN: every mail is an .eml file under $(rel "$MAIL_DIR")/"
    fi
    printf '%-14s %s\n' stop "make stop"
}

# Replica i (2..n) of <svc>: the same binary and config, its ports moved by 100*(i-1) through the
# environment (KEEL__GRPC__LISTEN, KEEL__ADMIN__LISTEN), pid file <svc>-r<i>.pid, log <svc>-r<i>.log.
# Replicas share the database and the broker: one of them holds the outbox relay's lock, and their
# consumers share each durable consumer's messages.
replica_addr() { # <host:port> <replica index> -> host:(port + 100*(index-1))
    local host="${1%:*}" port="${1##*:}"
    printf '%s:%s' "$host" $((port + 100 * ($2 - 1)))
}

cmd_replicas() {
    local svc="${1:?usage: services.sh replicas <service> <count>}" count="${2:?count}" i pid bin
    local grpc admin name log deadline
    [ -f "$ROOT/config/$svc.yaml" ] || { warn "no config/$svc.yaml"; return 1; }
    grpc="$(config_listen "$svc" grpc)"
    admin="$(config_listen "$svc" admin)"
    case "$grpc$admin" in *:0*) warn "$svc listens on port 0; replicas need fixed ports"; return 1 ;; esac
    bin="$BIN_DIR/keel-$svc"
    mkdir -p "$LOGS" "$PIDS"
    for ((i = 2; i <= count; i++)); do
        name="$svc-r$i"
        pid="$(cat "$PIDS/$name.pid" 2>/dev/null || true)"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            say "$name already running (pid $pid)"
            continue
        fi
        log="$LOGS/$name.log"
        printf '\n---- %s started by scripts/services.sh\n' "$(date '+%F %T')" >>"$log"
        (cd "$ROOT" && KEEL__GRPC__LISTEN="$(replica_addr "$grpc" "$i")" \
            KEEL__ADMIN__LISTEN="$(replica_addr "$admin" "$i")" \
            exec setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ \
            "$PIDS/$name.pid" "$bin" --config "config/$svc.yaml" </dev/null >>"$log" 2>&1) &
        deadline=$((SECONDS + READY_TIMEOUT))
        until [ "$(http_status "$(local_addr "$(replica_addr "$admin" "$i")")" /readyz)" = 200 ]; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                warn "$name not ready after ${READY_TIMEOUT}s; see $(rel "$log")"
                return 1
            fi
            sleep 0.2
        done
        say "$name ready: gRPC $(replica_addr "$grpc" "$i"), admin $(replica_addr "$admin" "$i")"
    done
}

cmd_replicas_stop() {
    local svc="${1:?usage: services.sh replicas-stop <service>}" file pid
    for file in "$PIDS/$svc"-r*.pid; do
        [ -f "$file" ] || continue
        pid="$(cat "$file")"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            say "stopping $(basename "$file" .pid) (pid $pid)"
        fi
        rm -f "$file"
    done
}

case "${1:-}" in
start) cmd_start ;;
replicas) cmd_replicas "${2:-}" "${3:-}" ;;
replicas-stop) cmd_replicas_stop "${2:-}" ;;
stop) cmd_stop ;;
status) print_table ;;
*)
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
