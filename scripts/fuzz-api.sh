#!/usr/bin/env bash
# Property-based API fuzzing of the edge gateway with schemathesis (from PyPI, pinned, in a venv
# under .dev/venv), against /openapi.json: every documented operation is called with generated
# valid and invalid input. The run fails on any 5xx and on any response that contradicts the
# document (status, content type or body schema).
#
#   bash scripts/fuzz-api.sh            (what `make fuzz-api` runs)
#
# It brings up what it needs: the local stack (Postgres, NATS), the service binaries, identity and
# tenancy (through scripts/services.sh, as `make run` does), and a gateway of its own, freshly
# built, on FUZZ_PORT (18080), with the shipped route table minus its rate limits (429s would hide
# the rest). Calls carry a tenant-scoped token of a user it registers and name that user's tenant
# in paths, so authenticated operations are exercised past the edge (Logout is left out: it would end that token's session for every
# later call). Services it had to start are stopped again at the end.
#
# Environment: FUZZ_PORT (18080), FUZZ_ADMIN_PORT (19090), FUZZ_MAX_EXAMPLES (per operation, 30),
# FUZZ_WORKERS (2), FUZZ_SEED (random), SCHEMATHESIS_VERSION (the pin below), CARGO (cargo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV="${KEEL_DEV_DIR:-$ROOT/.dev}"
VENV="$DEV/venv"
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
PORT="${FUZZ_PORT:-18080}"
ADMIN_PORT="${FUZZ_ADMIN_PORT:-19090}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-30}"
WORKERS="${FUZZ_WORKERS:-2}"
# Not the `coverage` phase by default: with schemathesis 4.32.5 and hypothesis 6.170 it can crash
# inside hypothesis (its AST walk of schemathesis' largest source file to describe a filter lambda
# hits "AST constructor recursion depth mismatch"), failing the run with no finding against the API.
# `FUZZ_PHASES=examples,coverage,fuzzing` brings it back.
PHASES="${FUZZ_PHASES:-examples,fuzzing}"
CARGO="${CARGO:-cargo}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
GATEWAY_URL="http://127.0.0.1:$PORT"
WORK="$DEV/fuzz"
LOG="$DEV/logs/fuzz-gateway.log"

say() { printf '==> fuzz-api: %s\n' "$*"; }
die() {
    printf '==> fuzz-api: %s\n' "$*" >&2
    exit 1
}

mkdir -p "$WORK" "$DEV/logs"

# 1. schemathesis, pinned, in the project's venv.
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
    say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv failed (is python3-venv installed?)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# 2. The stack, the binaries, the services behind the gateway.
bash "$ROOT/scripts/stack.sh" up
say "building the service binaries"
(cd "$ROOT" && "$CARGO" build --workspace --bins)
running_before="$(bash "$ROOT/scripts/services.sh" status 2>/dev/null | grep -c ' running ' || true)"

gateway_pid=""
cleanup() {
    local status=$?
    if [ -n "$gateway_pid" ] && kill -0 "$gateway_pid" 2>/dev/null; then
        kill -TERM "$gateway_pid" 2>/dev/null || true
        wait "$gateway_pid" 2>/dev/null || true
    fi
    if [ "$running_before" = 0 ]; then
        say "stopping the services this run started"
        bash "$ROOT/scripts/services.sh" stop >/dev/null 2>&1 || true
    fi
    exit "$status"
}
trap cleanup EXIT INT TERM

bash "$ROOT/scripts/services.sh" start || die "identity and tenancy must be running (see the table above)"

# 3. A gateway of our own: the binary just built, the shipped config, no rate limits.
"$VENV/bin/python" - "$ROOT/config/routes.yaml" "$WORK/routes.yaml" <<'PY'
import sys, yaml
with open(sys.argv[1]) as f:
    table = yaml.safe_load(f)
table.pop("rate_limits", None)
# The failed-authentication limit applies even without a rate_limits section; the fuzzer's
# stream of bad credentials would otherwise turn every later case into a 429.
table["rate_limits"] = {"failed_auth": {"rate": 1000000, "per_secs": 1, "burst": 1000000}}
for service in (table.get("services") or {}).values():
    service.pop("rate_limit", None)
    for method in (service.get("methods") or {}).values():
        method.pop("rate_limit", None)
with open(sys.argv[2], "w") as f:
    yaml.safe_dump(table, f, sort_keys=False)
PY
say "starting a gateway on $GATEWAY_URL (log ${LOG#"$ROOT"/})"
printf '\n---- %s started by scripts/fuzz-api.sh\n' "$(date '+%F %T')" >>"$LOG"
(
    cd "$ROOT"
    export KEEL__HTTP__LISTEN="127.0.0.1:$PORT"
    export KEEL__ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT"
    export KEEL__ROUTES="$WORK/routes.yaml"
    exec "$TARGET/debug/keel-edge-gateway" --config config/edge-gateway.yaml
) >>"$LOG" 2>&1 &
gateway_pid=$!

ready=""
for _ in $(seq 1 120); do
    kill -0 "$gateway_pid" 2>/dev/null || { tail -n 20 "$LOG" >&2; die "the gateway exited during start-up"; }
    if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('$GATEWAY_URL/readyz', timeout=2)" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.5
done
[ -n "$ready" ] || die "the gateway is not ready after 60 s; see ${LOG#"$ROOT"/}"

# 4. A user with a tenant of their own, through the gateway.
identity="$("$VENV/bin/python" - "$GATEWAY_URL" <<'PY'
import json, sys, time, uuid, urllib.error, urllib.request
base = sys.argv[1]
def call(path, body, token=None):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    if token:
        request.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)
suffix = uuid.uuid4().hex[:10]
email, password = f"fuzz-{suffix}@example.com", "Fuzzing horse 42"
call("/v1/auth/register", {"email": email, "password": password, "displayName": "Fuzz"})
unscoped = call("/v1/auth/login", {"email": email, "password": password})["accessToken"]
tenant = call("/v1/tenants", {"name": "Fuzz", "slug": f"fuzz-{suffix}"}, unscoped)["id"]
for _ in range(100):  # identity learns the membership from tenancy's events
    try:
        print(call("/v1/auth/switch-tenant", {"tenantId": tenant}, unscoped)["accessToken"], tenant)
        break
    except urllib.error.HTTPError:
        time.sleep(0.2)
else:
    sys.exit("could not switch to the fuzz tenant")
PY
)" || die "could not sign up a fuzz user through the gateway"
read -r token tenant <<<"$identity"
# Paths name the fuzz user's own tenant, so calls get past the edge's tenant check to the services.
printf '[parameters]\n"path.tenant_id" = "%s"\n' "$tenant" >"$WORK/schemathesis.toml"

# 5. Fuzz. Left out: Logout (it would end the fuzz user's session) and WatchNotifications, whose
# first answer through the gateway does not come within the upstream timeout today (a 504 after
# 5 s: a known bug, see the notifications issue's note).
seed=()
[ -z "${FUZZ_SEED:-}" ] || seed=(--seed "$FUZZ_SEED")
say "schemathesis $SCHEMATHESIS_VERSION against $GATEWAY_URL/openapi.json ($MAX_EXAMPLES examples per operation)"
"$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$GATEWAY_URL/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases "$PHASES" \
    --header "Authorization: Bearer $token" \
    --exclude-operation-id identity.v1.AuthService.Logout \
    --exclude-operation-id notifications.v1.NotificationService.WatchNotifications \
    --generation-with-security-parameters false \
    --max-examples "$MAX_EXAMPLES" \
    --workers "$WORKERS" \
    --request-timeout 15 \
    --suppress-health-check all \
    --report junit --report-dir "$WORK/report" \
    "${seed[@]}"
