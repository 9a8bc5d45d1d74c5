#!/usr/bin/env bash
# `make compose-smoke`: the whole mesh as containers (deploy/compose/compose.yaml: Postgres, NATS,
# provisioning, every service, the edge gateway, all from locally built images), driven through
# the REST scenario of `make run` (README "Try it"): register, log in, create a tenant, switch to
# it, see the free plan billing subscribed it to, ask the AI gateway, read the entitlements.
#
# Without a Docker daemon (or docker-compose) it says so and exits 0. Missing images are built
# (scripts/images.sh). The project name and host port are its own (keel-smoke, 28080), so a
# running `make run` stack is never touched; everything it starts is removed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROJECT="${KEEL_COMPOSE_PROJECT:-keel-smoke}"
export KEEL_COMPOSE_HTTP_PORT="${KEEL_COMPOSE_HTTP_PORT:-28080}"
export KEEL_IMAGE_TAG="${KEEL_IMAGE_TAG:-dev}"
export KEEL_COMPOSE_KEYS="$PWD/.dev/compose/keys"
export KEEL_COMPOSE_CLIENTS="$PWD/.dev/compose/clients"
G="http://127.0.0.1:$KEEL_COMPOSE_HTTP_PORT"
J='content-type: application/json'
MESH=(identity tenancy billing delivery marketplace ai-gateway notifications edge-gateway)

log() { printf '==> %s\n' "$*"; }
die() { printf 'compose-smoke: FAILED: %s\n' "$*" >&2; exit 1; }

docker info >/dev/null 2>&1 || { log "no Docker daemon (docker info failed): skipping the compose smoke test"; exit 0; }
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then COMPOSE=(docker-compose)
else log "neither 'docker compose' nor docker-compose: skipping the compose smoke test"; exit 0; fi
for tool in curl jq openssl; do command -v "$tool" >/dev/null || die "$tool is needed"; done
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f deploy/compose/compose.yaml "$@"; }

# Images: whatever is missing, from the local bases.
for svc in "${MESH[@]}"; do
    docker image inspect "keel-$svc:$KEEL_IMAGE_TAG" >/dev/null 2>&1 || bash scripts/images.sh build "$svc"
done
docker image inspect "${KEEL_RUNTIME_BASE:-keel-base-runtime:bookworm}" >/dev/null 2>&1 || bash scripts/images.sh base

# identity's two signing keys, where the pod has its Secret (throwaway, regenerated each run).
rm -rf "$KEEL_COMPOSE_KEYS" && mkdir -p "$KEEL_COMPOSE_KEYS"
for kid in keel-1 keel-2; do
    openssl genpkey -algorithm ed25519 -out "$KEEL_COMPOSE_KEYS/$kid.pem" 2>/dev/null
done
chmod 755 "$KEEL_COMPOSE_KEYS" && chmod 644 "$KEEL_COMPOSE_KEYS"/*.pem  # the containers' UID 65532
# notifications' client secret at identity (Secret keel-notifications-client in Kubernetes).
rm -rf "$KEEL_COMPOSE_CLIENTS" && mkdir -p "$KEEL_COMPOSE_CLIENTS"
openssl rand -hex 24 >"$KEEL_COMPOSE_CLIENTS/notifications"
chmod 755 "$KEEL_COMPOSE_CLIENTS" && chmod 644 "$KEEL_COMPOSE_CLIENTS/notifications"

finish() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        log "logs (last 40 lines per container):"
        compose logs --no-color --tail=40 2>&1 || true
    fi
    log "removing the $PROJECT containers"
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    exit "$status"
}
trap finish EXIT

log "starting the mesh ($PROJECT, gateway on $G)"
compose up -d --build 2>&1 | grep -v '^\s*$' | sed 's/^/    /'

# Ready when the gateway answers and identity's JWKS is loaded (it serves the OpenAPI at once,
# but a login needs the upstreams).
deadline=$((SECONDS + 180))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$G/openapi.json")" = 200 ]; do
    [ $SECONDS -lt $deadline ] || die "gateway not answering on $G after 180 s"
    sleep 2
done
# And every service ready (its /readyz, the compose healthcheck): a request must not race a
# service still migrating.
for svc in "${MESH[@]}"; do
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q "$svc")" 2>/dev/null)" = healthy ]; do
        [ $SECONDS -lt $deadline ] || die "$svc not ready (/readyz) after 180 s"
        sleep 2
    done
done
log "gateway answers, ${#MESH[@]} services ready; running the REST scenario"

call() { # <method> <path> <token or -> [body]: prints the body, fails on a non-2xx status
    local method="$1" path="$2" token="$3" body="${4:-}" out status
    local args=(-s -X "$method" "$G$path" -H "$J" -w '\n%{http_code}')
    [ "$token" = - ] || args+=(-H "authorization: Bearer $token")
    [ -z "$body" ] || args+=(-d "$body")
    out=$(curl "${args[@]}")
    status=${out##*$'\n'}
    out=${out%$'\n'*}
    [[ "$status" == 2* ]] || { printf '%s\n' "$out" >&2; die "$method $path answered $status"; }
    printf '%s' "$out"
}
eventually() { # <description> <command...>: retried for up to 60 s
    local what="$1"; shift
    local until=$((SECONDS + 60))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $until ] || die "$what: not within 60 s"
        sleep 1
    done
}

EMAIL="ada-$RANDOM$RANDOM@example.com"
PASSWORD='Correct-horse-9-battery'
eventually "register" call POST /v1/auth/register - "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\",\"displayName\":\"Ada\"}"
log "registered $EMAIL"
T=$(call POST /v1/auth/login - "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" | jq -r .accessToken)
[ -n "$T" ] && [ "$T" != null ] || die "login returned no access token"
log "logged in"
SLUG="acme-$RANDOM"
TID=$(call POST /v1/tenants "$T" "{\"name\":\"Acme\",\"slug\":\"$SLUG\"}" | jq -r .id)
[ -n "$TID" ] && [ "$TID" != null ] || die "creating a tenant returned no id"
log "tenant $TID created"
ST=$(call POST /v1/auth/switch-tenant "$T" "{\"tenantId\":\"$TID\"}" | jq -r .accessToken)
[ -n "$ST" ] && [ "$ST" != null ] || die "switch-tenant returned no access token"
log "switched to the tenant"
has_free_plan() { call GET "/v1/tenants/$TID/subscriptions" "$ST" | jq -e '.subscriptions | length > 0' ; }
eventually "billing subscribes the new tenant (tenancy -> NATS -> billing)" has_free_plan
log "billing subscribed the tenant: $(call GET "/v1/tenants/$TID/subscriptions" "$ST" | jq -c '[.subscriptions[].planId]')"
complete() {
    call POST "/v1/tenants/$TID/ai/completions" "$ST" '{"prompt":"What can you do?","maxTokens":40}' \
        | jq -e '.message.content | length > 0'
}
eventually "the AI module is on (billing -> NATS -> tenancy) and the AI gateway answers" complete
log "the AI gateway answered"
used() { call GET "/v1/tenants/$TID/billing-entitlements" "$ST" | jq -e . ; }
eventually "billing entitlements" used
log "entitlements: $(call GET "/v1/tenants/$TID/billing-entitlements" "$ST" | jq -c .)"
log "compose smoke test passed: ${#MESH[@]} service containers + Postgres + NATS"
