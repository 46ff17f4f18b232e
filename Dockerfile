# Multi-stage build of every Manifold binary: bff-mobile, bff-web, bff-partner and `demo`
# (the sample backends with --backends-only). One image; docker-compose.yml picks the
# command per service.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p bff-mobile -p bff-web -p bff-partner -p demo

FROM debian:bookworm-slim
# curl: the compose health checks probe /readyz from inside the container.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 manifold
WORKDIR /app
COPY --from=build /src/target/release/bff-mobile /src/target/release/bff-web \
     /src/target/release/bff-partner /src/target/release/demo /usr/local/bin/
COPY config/ /app/config/
USER manifold
# Each BFF reads config/<name>.toml from /app by default; MANIFOLD_* variables override keys.
CMD ["bff-mobile"]
