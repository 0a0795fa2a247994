# syntax=docker/dockerfile:1
# Orderly's one image: orderly-api, orderly-worker, orderly-scheduler and orderly-migrate, with
# the e-mail templates. Build: docker build -t orderly:dev .   (see docs/operations.md, "Run in production")

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
# The release profile keeps line tables (Cargo.toml). Each binary ships stripped, and its
# debug info goes to /debug/<binary>.debug (objcopy --only-keep-debug, linked back by
# --add-gnu-debuglink) for Sentry's symbol upload: see the `debug-symbols` stage below.
RUN cargo build --release --locked \
        -p orderly-api -p orderly-worker -p orderly-scheduler -p orderly-migrations \
    && mkdir -p /out /debug \
    && for bin in orderly-api orderly-worker orderly-scheduler orderly-migrate; do \
           objcopy --only-keep-debug "target/release/$bin" "/debug/$bin.debug" \
           && objcopy --strip-all --add-gnu-debuglink="/debug/$bin.debug" \
                  "target/release/$bin" "/out/$bin" \
           || exit 1; \
       done

# The split debug info alone, for `sentry-cli debug-files upload`:
#   docker build --target debug-symbols --output type=local,dest=symbols .
FROM scratch AS debug-symbols
COPY --from=builder /debug/ /

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
# One image, four commands: the orchestrator picks one (default: the API). Health is checked
# by the orchestrator per role (Kubernetes' probes, Compose's healthcheck on /health): the
# worker and the scheduler serve no /health, so one image-wide HEALTHCHECK would be wrong.
#checkov:skip=CKV_DOCKER_2:Health is checked per role by the orchestrator (Kubernetes probes, Compose healthchecks); one image runs four binaries and only the API serves /health
CMD ["orderly-api"]
