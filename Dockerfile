# One image per keel service: docker build --build-arg SERVICE=tenancy -t keel-tenancy:dev .
# (scripts/images.sh builds them all from locally assembled bases; `make images`).
#
# Base images are build arguments. Defaults are public images for a CI that can pull; this
# machine passes bases made with debootstrap + docker import (scripts/images.sh base).
ARG BUILDER_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---- skeleton: what decides the dependency build, and nothing else --------------------------
# Manifests, the lockfile, build scripts and the protos they compile, and an empty stub for each
# target root (lib.rs, main.rs, src/bin/*, explicit `path =` targets): no other source, so adding
# a module or a test does not invalidate the dependency layer. Its output only changes when those do,
# so the `deps` layer below stays cached across source edits (the trick cargo-chef automates).
FROM ${BUILDER_IMAGE} AS skeleton
WORKDIR /src
COPY . .
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN mkdir /skeleton \
    && find . \( -name Cargo.toml -o -name Cargo.lock -o -name build.rs \) -print0 \
        | xargs -0 cp --parents -t /skeleton \
    && cp -r --parents proto /skeleton \
    && find crates services \( -path '*/src/main.rs' -o -path '*/src/bin/*.rs' \) -print0 \
        | while IFS= read -r -d '' main; do \
            mkdir -p "/skeleton/$(dirname "$main")" && echo 'fn main() {}' >"/skeleton/$main"; done \
    && find crates services -path '*/src/lib.rs' -print0 \
        | while IFS= read -r -d '' lib; do \
            mkdir -p "/skeleton/$(dirname "$lib")" && : >"/skeleton/$lib"; done \
    && for manifest in crates/*/Cargo.toml services/*/Cargo.toml; do \
        sed -n 's/^path = "\(.*\)"$/\1/p' "$manifest" | while read -r target; do \
            file="/skeleton/$(dirname "$manifest")/$target"; \
            mkdir -p "$(dirname "$file")" && [ -e "$file" ] || echo 'fn main() {}' >"$file"; done; \
    done \
    && cargo metadata --manifest-path /skeleton/Cargo.toml --no-deps --format-version 1 >/dev/null

# ---- deps: every third-party crate of every service, compiled once for all images -----------
FROM ${BUILDER_IMAGE} AS deps
WORKDIR /src
ENV CARGO_TARGET_DIR=/src/target CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never
COPY --from=skeleton /skeleton/ ./
# The service list is fixed here (not the SERVICE argument) so one layer serves every image.
ARG CARGO_BUILD_JOBS=2
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN mapfile -t services < <(find services -mindepth 2 -maxdepth 2 -name Cargo.toml -printf '%h\n' | sed 's|^services/|keel-|') \
    && cargo build --release --locked --bins "${services[@]/#/--package=}" \
    && rm -rf target/release/.fingerprint/keel-* target/release/deps/keel_* target/release/deps/libkeel_* \
    && rm -rf target/release/keel-*

# ---- build: every service, once; each image below takes its one binary ------------------
# Building the same package set as `deps` keeps cargo's feature unification identical, so no
# dependency is compiled twice, and this layer (no SERVICE in it) serves all images.
FROM deps AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY . .
# COPY keeps the files' mtimes, which may be older than the stubs': make cargo see the real code.
RUN find crates services proto -type f -exec touch {} + \
    && mapfile -t services < <(find services -mindepth 2 -maxdepth 2 -name Cargo.toml -printf '%h\n' | sed 's|^services/|keel-|') \
    && cargo build --release --locked --bins "${services[@]/#/--package=}" --package=keel-kernel \
    && mkdir /out && find target/release -maxdepth 1 -type f -name 'keel-*' -perm -u+x -exec cp {} /out/ \;

# ---- runtime: glibc + CA certificates, nothing to write to, UID 65532 ------------------------
FROM ${RUNTIME_IMAGE}
ARG SERVICE
LABEL org.opencontainers.image.title="keel-${SERVICE}" \
      org.opencontainers.image.source="https://github.com/example/keel" \
      org.opencontainers.image.licenses="Apache-2.0"
# A missing or unknown SERVICE fails here: there is no /out/keel-<it>.
COPY --from=build /out/keel-${SERVICE} /usr/local/bin/keel-service
# Creates a service's database role and schema and the event stream, with admin credentials: a
# one-off job (deploy/compose, deploy/k8s/README.md), never what the service itself runs.
COPY --from=build /out/keel-provision /usr/local/bin/keel-provision
USER 65532:65532
# grpc, admin (health, metrics); the edge gateway also serves REST on 8080.
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/keel-service"]
CMD ["--config", "/etc/keel/service.yaml"]
