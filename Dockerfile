# syntax=docker/dockerfile:1
# One image with every Manifold binary: bff-mobile, bff-web, bff-partner and `demo` (the sample
# backends with --backends-only). docker-compose.yml and deploy/kubernetes/ pick the command.
#
# The dependencies are built in a layer of their own that a change of source does not
# invalidate: the `skeleton` stage reduces the workspace to its manifests, the lock file and
# stub targets (deploy/docker/stub-workspace.sh), and only that skeleton enters the `build`
# stage before the dependencies are compiled. Docker compares the skeleton by content, so
# the layer is rebuilt only when a Cargo.toml, Cargo.lock or the set of targets changes.
# .ci/run checks the skeleton (deploy/docker/check_stub_workspace.py) and lints this file.

# The toolchain the project is tested with in CI (rust-version in Cargo.toml is the floor).
ARG RUST_IMAGE=rust:1.95-bookworm

FROM ${RUST_IMAGE} AS skeleton
WORKDIR /src
COPY . .
RUN deploy/docker/stub-workspace.sh /src /skeleton

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# 1. Dependencies only, against the skeleton: cached until a manifest or the lock changes.
COPY --from=skeleton /skeleton/ ./
RUN cargo build --release --locked -p bff-mobile -p bff-web -p bff-partner -p demo
# 2. The real sources. Their time stamps may be older than the stub build's, and cargo
#    decides what to rebuild by time stamp: touch them so every workspace crate is rebuilt
#    from its real source (the dependencies stay built).
COPY . .
RUN find . -path ./target -prune -o -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p bff-mobile -p bff-web -p bff-partner -p demo

FROM debian:bookworm-slim
# curl: docker-compose.yml's health checks probe /readyz from inside the container
# (Kubernetes probes over HTTP and needs nothing in the image). ca-certificates: a
# backend's or Redis's TLS certificate may chain to the platform's roots. Not pinned to a
# version: bookworm's point releases replace them, and a pin would break the build then.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# A numeric user, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN useradd --system --uid 10001 --user-group --no-create-home manifold
WORKDIR /app
COPY --from=build /src/target/release/bff-mobile /src/target/release/bff-web \
     /src/target/release/bff-partner /src/target/release/demo /usr/local/bin/
# Each BFF reads config/<name>.toml from /app by default (deploy/kubernetes mounts its
# ConfigMap at /etc/manifold and says --config); MANIFOLD_* variables override keys. Nothing
# is written at run time: the image runs with a read-only root filesystem.
COPY config/ /app/config/
USER 10001:10001
CMD ["bff-mobile"]
