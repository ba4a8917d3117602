# syntax=docker/dockerfile:1
# twenty-mirror: a multi-stage build. Dependencies compile in a layer of their own, rebuilt only when
# Cargo.toml or Cargo.lock change; the runtime image is Debian slim with CA certificates (Twenty's
# API is HTTPS) and a non-root user.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /app

# 1. Dependencies: build the real manifests against placeholder sources.
COPY Cargo.toml Cargo.lock ./
COPY crates/fake-twenty/Cargo.toml crates/fake-twenty/
RUN mkdir -p src benches crates/fake-twenty/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs crates/fake-twenty/src/lib.rs \
    && for bench in webhook_load reconcile_load views_load status_load read_load; do echo 'fn main() {}' > "benches/$bench.rs"; done \
    && cargo build --release --locked --bin twenty-mirror \
    && rm -rf src benches crates/fake-twenty/src

# 2. The service itself.
COPY src ./src
COPY crates ./crates
COPY migrations ./migrations
COPY benches ./benches
RUN touch src/main.rs src/lib.rs crates/fake-twenty/src/lib.rs && cargo build --release --locked --bin twenty-mirror

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --create-home mirror
COPY --from=build /app/target/release/twenty-mirror /usr/local/bin/twenty-mirror
USER mirror
# SQLite's default file lands here; mount a volume on /data to keep it (see fly.toml).
WORKDIR /data
ENV HOST=0.0.0.0 PORT=8080 LOG_FORMAT=json DATABASE_URL=sqlite:///data/twenty-mirror.db
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/twenty-mirror"]
CMD ["serve"]
