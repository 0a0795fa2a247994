# syntax=docker/dockerfile:1
# Orderly's one image: orderly-api, orderly-worker, orderly-scheduler and orderly-migrate, with
# the e-mail templates. Build: docker build -t orderly:dev .   (see README, "Run in production")

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

# Dependencies are compiled in a layer of their own (cargo-chef), so a change to Orderly's code
# rebuilds only Orderly.
FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
    -p orderly-api -p orderly-worker -p orderly-scheduler -p orderly-migrations
COPY . .
RUN cargo build --release --locked \
        -p orderly-api -p orderly-worker -p orderly-scheduler -p orderly-migrations \
    && mkdir -p /out \
    && cp target/release/orderly-api target/release/orderly-worker \
          target/release/orderly-scheduler target/release/orderly-migrate /out/

# The runtime: Debian slim with CA certificates (Stripe, Twilio, SMTP over TLS) and curl (for
# Compose's health checks), no compiler, a non-root user.
FROM debian:${DEBIAN}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 orderly \
    && useradd --system --uid 10001 --gid orderly --home-dir /app --shell /usr/sbin/nologin orderly
WORKDIR /app
COPY --from=builder /out/ /usr/local/bin/
COPY shared/templates /app/templates
ENV TEMPLATES_DIR=/app/templates \
    DATA_DIR=/app/data \
    APP_ENV=production \
    LOG_FORMAT=json \
    API_ADDR=0.0.0.0:8080
RUN mkdir -p /app/data && chown orderly:orderly /app/data
USER 10001:10001
EXPOSE 8080
# One image, four commands: the orchestrator picks one (default: the API).
CMD ["orderly-api"]
