#!/usr/bin/env bash
# keel chaos suite (`make chaos`): the whole mesh on a PRIVATE Postgres + NATS (own ports, own
# .dev-chaos/ directory; the local stack of `make run`/`make test` is never touched), driven by
# keel-load through the edge gateway while parts of it die. Each scenario's figures (requests,
# acknowledged, lost, duplicated, cross-tenant reads, recovery time) go into BENCHMARKS.md.
#
#   bash scripts/chaos.sh                 build the binaries once, run every scenario, stop all
#   bash scripts/chaos.sh up|down         just the private mesh (for poking at it by hand)
#   bash scripts/chaos.sh run <scenario>  one scenario on a mesh that is up
#
# Scenarios: baseline, nats-kill, postgres-restart, kill-<service> (each service SIGKILLed and
# restarted), replicas (3 instances of each consuming service, the active relay's SIGKILLed),
# overload (3x the baseline's clients), clients-1000 (GET /v1/me, 1,000 clients).
# The gateway routes to the first instance only until its upstreams take several addresses.
#
# Environment: KEEL_CHAOS_PROFILE (release; `debug` for a quick pass on debug builds),
# KEEL_CHAOS_CLIENTS (100), KEEL_CHAOS_TENANTS (20), KEEL_CHAOS_SECS (30), KEEL_CHAOS_WRITE
# (BENCHMARKS.md; empty: print only), CARGO_TARGET_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHAOS="$ROOT/.dev-chaos"
CONF="$CHAOS/config"
LOGS="$CHAOS/logs"
PIDS="$CHAOS/pids"
PROFILE="${KEEL_CHAOS_PROFILE:-release}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
BIN="${KEEL_CHAOS_BIN_DIR:-$TARGET/$PROFILE}"
CLIENTS="${KEEL_CHAOS_CLIENTS:-100}"
TENANTS="${KEEL_CHAOS_TENANTS:-20}"
SECS="${KEEL_CHAOS_SECS:-30}"
WRITE="${KEEL_CHAOS_WRITE-$ROOT/BENCHMARKS.md}"

# Private ports: the dev stack's plus 1000 (Postgres, NATS) and the services' plus 1000.
PG_PORT=56432
NATS_PORT=55222
NATS_MON_PORT=59222
GATEWAY_PORT=18080
SERVICES=(identity tenancy billing delivery marketplace ai-gateway)
GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"

say() { printf '==> %s\n' "$*"; }
die() {
    printf '==> error: %s\n' "$*" >&2
    exit 1
}

stack() {
    KEEL_DEV_DIR="$CHAOS" KEEL_PG_PORT="$PG_PORT" KEEL_NATS_PORT="$NATS_PORT" \
        KEEL_NATS_MONITOR_PORT="$NATS_MON_PORT" bash "$ROOT/scripts/stack.sh" "$@"
}

# The configs of `make run`, moved onto the private ports and state directory.
write_configs() {
    mkdir -p "$CONF"
    local file
    for file in "$ROOT"/config/*.yaml; do
        sed -e "s/:55432/:$PG_PORT/g" -e "s/:54222/:$NATS_PORT/g" \
            -e 's/127\.0\.0\.1:500\([0-9][0-9]\)/127.0.0.1:510\1/g' \
            -e 's/127\.0\.0\.1:909\([0-9]\)/127.0.0.1:919\1/g' \
            -e "s/127\.0\.0\.1:8080/127.0.0.1:$GATEWAY_PORT/g" \
            -e 's#\.dev/keys#.dev-chaos/keys#g' \
            "$file" >"$CONF/$(basename "$file")"
    done
}

admin_port() { # the admin port of <svc> in the private configs
    awk '/^admin:/ { a = 1; next } /^[^[:space:]]/ { a = 0 } a && /listen:/ { sub(/.*:/, ""); print; exit }' \
        "$CONF/$1.yaml"
}

status_of() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true; }

pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || true; }

# Start <svc> from the private config; waits for /readyz and prints the milliseconds it took.
start_service() {
    local svc="$1" started port deadline
    mkdir -p "$LOGS" "$PIDS"
    started=$(date +%s%N)
    (cd "$ROOT" && exec setsid "$BIN/keel-$svc" --config "$CONF/$svc.yaml" </dev/null >>"$LOGS/$svc.log" 2>&1) &
    echo $! >"$PIDS/$svc.pid"
    port="$(admin_port "$svc")"
    deadline=$((SECONDS + 60))
    until [ "$(status_of "http://127.0.0.1:$port/readyz")" = 200 ]; do
        kill -0 "$(pid_of "$svc")" 2>/dev/null || die "$svc exited; see $LOGS/$svc.log"
        [ "$SECONDS" -lt "$deadline" ] || die "$svc not ready within 60 s; see $LOGS/$svc.log"
        sleep 0.05
    done
    echo $((($(date +%s%N) - started) / 1000000))
}

# Replica <i> (2..) of <svc>: same config, gRPC and admin ports + 100*(i-1), named <svc>-r<i>.
start_replica() {
    local svc="$1" i="$2" name="$1-r$2" grpc admin port deadline
    grpc="$(awk '/^grpc:/ { a = 1; next } /^[^[:space:]]/ { a = 0 } a && /listen:/ { sub(/.*:/, ""); print; exit }' "$CONF/$svc.yaml")"
    admin="$(admin_port "$svc")"
    port=$((admin + 100 * (i - 1)))
    (cd "$ROOT" && KEEL__GRPC__LISTEN="127.0.0.1:$((grpc + 100 * (i - 1)))" KEEL__ADMIN__LISTEN="127.0.0.1:$port" \
        exec setsid "$BIN/keel-$svc" --config "$CONF/$svc.yaml" </dev/null >>"$LOGS/$name.log" 2>&1) &
    echo $! >"$PIDS/$name.pid"
    deadline=$((SECONDS + 60))
    until [ "$(status_of "http://127.0.0.1:$port/readyz")" = 200 ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "$name not ready within 60 s; see $LOGS/$name.log"
        sleep 0.05
    done
}

# The instance (<svc> or <svc>-r<i>) whose log last says it became the active relay.
active_relay() {
    local svc="$1" name newest="" newest_time=0 t
    for name in "$svc" "$svc"-r2 "$svc"-r3; do
        [ -n "$(pid_of "$name")" ] || continue
        grep -q 'active relay for this service' "$LOGS/$name.log" 2>/dev/null || continue
        # Only one live instance holds the lock; should two live logs say so (one lost its lock
        # connection and is waiting again), the more recently written log is the better guess.
        t="$(stat -c %Y "$LOGS/$name.log")"
        if [ "$t" -ge "$newest_time" ]; then newest="$name"; newest_time="$t"; fi
    done
    printf '%s' "$newest"
}

relay_lines() { # how many times instance logs of <svc> said "active relay"
    cat "$LOGS/$1".log "$LOGS/$1"-r*.log 2>/dev/null | grep -c 'active relay for this service' || true
}

kill_service() { # SIGKILL: no drain, no goodbye
    local pid
    pid="$(pid_of "$1")"
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDS/$1.pid"
}

stop_service() {
    local pid
    pid="$(pid_of "$1")"
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDS/$1.pid"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$(pid_of "$1")/status" 2>/dev/null || echo 0; }

cmd_build() {
    local flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    say "building the service binaries and keel-load ($PROFILE, once)"
    local packages=()
    for svc in "${SERVICES[@]}" edge-gateway; do packages+=(-p "keel-$svc"); done
    cargo build "${flag[@]}" --bins "${packages[@]}" -p keel-load -p keel-kernel
}

cmd_up() {
    write_configs
    stack up
    eval "$(stack env)"
    [ -f "$CHAOS/keys/identity-dev-1.pem" ] || {
        mkdir -p "$CHAOS/keys" && chmod 700 "$CHAOS/keys"
        (umask 077 && openssl genpkey -algorithm ed25519 -out "$CHAOS/keys/identity-dev-1.pem")
    }
    local svc
    for svc in "${SERVICES[@]}"; do
        "$BIN/keel-provision" --admin-url "$KEEL_DEV_PG_URL" --nats-admin-url "$KEEL_DEV_NATS_URL" \
            --config "$CONF/$svc.yaml" >/dev/null
    done
    : >"$CHAOS/startup.tsv"
    for svc in "${SERVICES[@]}" edge-gateway; do
        local ms
        ms="$(start_service "$svc")"
        printf '%s\t%s\n' "$svc" "$ms" >>"$CHAOS/startup.tsv"
        say "$svc ready in $ms ms"
    done
}

cmd_down() {
    local svc
    for svc in edge-gateway "${SERVICES[@]}"; do stop_service "$svc"; done
    stack down || true
}

# keel-load in the background; its exit status and report land in $CHAOS/load-<name>.*
load_start() {
    local name="$1" clients="$2" mode="${3:-mixed}"
    local write=()
    [ -n "$WRITE" ] && write=(--write "$WRITE" --section "chaos: $name")
    "$BIN/keel-load" --gateway "$GATEWAY_URL" --mode "$mode" --tenants "$TENANTS" \
        --clients "$clients" --duration-secs "$SECS" --settle-secs "${KEEL_CHAOS_SETTLE:-90}" "${write[@]}" \
        >"$CHAOS/load-$name.md" 2>"$CHAOS/load-$name.log" &
    echo $! >"$CHAOS/load.pid"
}

load_wait() {
    local pid rc=0
    pid="$(cat "$CHAOS/load.pid")"
    wait "$pid" || rc=$?
    cat "$CHAOS/load-$1.md"
    [ "$rc" = 0 ] || say "scenario $1: keel-load reports lost/duplicated writes or cross-tenant reads (exit $rc)"
    return 0
}

# Appends "recovery" lines to the scenario's report (and to its BENCHMARKS.md section's file).
note() { printf '%s\n' "$*" >>"$CHAOS/notes-$SCENARIO.md"; say "$*"; }

wait_ready_all() { # prints seconds until every service's /readyz is 200
    local started=$SECONDS svc
    for svc in "${SERVICES[@]}"; do
        until [ "$(status_of "http://127.0.0.1:$(admin_port "$svc")/readyz")" = 200 ]; do sleep 0.1; done
    done
    echo $((SECONDS - started))
}

outbox_backlog_zero_after() { # seconds until every service's outbox_oldest_unpublished_age_seconds is 0
    local started=$SECONDS svc age
    for svc in "${SERVICES[@]}"; do
        while :; do
            age="$(curl -s "http://127.0.0.1:$(admin_port "$svc")/metrics" |
                awk '/^keel_outbox_oldest_unpublished_age_seconds/ { print $2 }')"
            case "$age" in 0 | 0.0 | "") break ;; esac
            [ $((SECONDS - started)) -lt 300 ] || break
            sleep 0.5
        done
    done
    echo $((SECONDS - started))
}

cmd_run() {
    SCENARIO="$1"
    : >"$CHAOS/notes-$SCENARIO.md"
    case "$SCENARIO" in
    baseline)
        load_start baseline "$CLIENTS"
        load_wait baseline
        ;;
    overload)
        load_start overload $((CLIENTS * 3))
        load_wait overload
        for svc in "${SERVICES[@]}" edge-gateway; do note "RSS after overload: $svc $(rss_kib "$svc") KiB"; done
        ;;
    clients-1000)
        load_start clients-1000 1000 reads
        load_wait clients-1000
        ;;
    nats-kill)
        load_start nats-kill "$CLIENTS"
        sleep 5
        local nats_pid
        nats_pid="$(cat "$CHAOS/nats.pid")"
        kill -KILL "$nats_pid"
        note "NATS killed (pid $nats_pid) for 20 s"
        sleep 20
        stack up >/dev/null
        note "NATS back; outbox backlog drained in $(outbox_backlog_zero_after) s"
        load_wait nats-kill
        ;;
    postgres-restart)
        load_start postgres-restart "$CLIENTS"
        sleep 5
        eval "$(stack env)"
        stack down >/dev/null 2>&1 || true # stops NATS too: bring it back at once
        stack up >/dev/null
        note "Postgres (and NATS) stopped and restarted; every service ready again $(wait_ready_all) s after"
        load_wait postgres-restart
        ;;
    replicas)
        # Three instances of each event-consuming service: one active relay each, consumers share
        # the durable consumers' messages; the active relay's instance is SIGKILLed mid-load.
        local svc i active before started
        for svc in tenancy billing delivery marketplace ai-gateway; do
            for i in 2 3; do start_replica "$svc" "$i"; done
        done
        note "3 instances each of tenancy, billing, delivery, marketplace, ai-gateway"
        load_start replicas "$CLIENTS"
        sleep 5
        for svc in tenancy billing; do
            active="$(active_relay "$svc")"
            [ -n "$active" ] || { note "$svc: no instance reported the active relay"; continue; }
            before="$(relay_lines "$svc")"
            started=$(date +%s%N)
            kill_service "$active"
            until [ "$(relay_lines "$svc")" -gt "$before" ]; do
                [ $((($(date +%s%N) - started) / 1000000000)) -lt 60 ] || break
                sleep 0.05
            done
            note "$svc: active relay ($active) SIGKILLed; another instance took over in $((($(date +%s%N) - started) / 1000000)) ms"
        done
        load_wait replicas
        for svc in tenancy billing delivery marketplace ai-gateway; do
            for i in 2 3; do kill_service "$svc-r$i"; done
            [ -n "$(pid_of "$svc")" ] || start_service "$svc" >/dev/null
        done
        ;;
    kill-*)
        local svc="${SCENARIO#kill-}" ms
        load_start "$SCENARIO" "$CLIENTS"
        sleep 5
        kill_service "$svc"
        note "$svc SIGKILLed"
        sleep 2
        ms="$(start_service "$svc")"
        note "$svc restarted, ready in $ms ms"
        load_wait "$SCENARIO"
        ;;
    *) die "unknown scenario $SCENARIO" ;;
    esac
    if [ -n "$WRITE" ] && [ -s "$CHAOS/notes-$SCENARIO.md" ]; then
        { printf '\nRecovery (scripts/chaos.sh, %s build):\n\n' "$PROFILE"; sed 's/^/- /' "$CHAOS/notes-$SCENARIO.md"; } >>"$CHAOS/notes-all.md"
    fi
}

cmd_all() {
    cmd_build
    trap cmd_down EXIT
    cmd_up
    for svc in "${SERVICES[@]}" edge-gateway; do say "idle RSS $svc: $(rss_kib "$svc") KiB"; done
    local scenarios=(baseline nats-kill postgres-restart)
    for svc in "${SERVICES[@]}"; do scenarios+=("kill-$svc"); done
    scenarios+=(replicas overload clients-1000)
    for scenario in "${scenarios[@]}"; do
        say "scenario $scenario"
        cmd_run "$scenario"
    done
}

case "${1:-all}" in
all) cmd_all ;;
build) cmd_build ;;
up) cmd_up ;;
down) cmd_down ;;
run) cmd_run "${2:?scenario}" ;;
*) die "usage: scripts/chaos.sh [all|build|up|down|run <scenario>]" ;;
esac
