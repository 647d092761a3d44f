# Account service image.
#   docker build -t account .        (or: docker compose up --build)
# The sources are copied explicitly (there is no .dockerignore): target/, keys/ and
# data/ never reach the image. Keys are mounted at run time (see docker-compose.yml).

# ---- build ---------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# SQL migrations are embedded at compile time (sqlx::migrate!), so migrations/ is
# needed here and not in the runtime image. No database is reachable while building.
ENV SQLX_OFFLINE=true

COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
# Cargo loads every target declared in Cargo.toml ([[bench]], [[test]]) even for
# `--bin account`, so their files must be present. The `[s]` wildcard lets the build
# work whether or not these folders exist yet (BuildKit allows an empty wildcard).
COPY benche[s] ./benches/
COPY test[s] ./tests/

# BuildKit cache mounts keep the registry and compiled dependencies between builds;
# the binary is copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin account \
 && install -D -m 0755 target/release/account /out/account

# ---- runtime -------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Non-root user. uid 1000 usually matches the developer who ran `account keys generate`,
# so the owner-only key files mounted from ./keys are readable (docker-compose.yml can
# override the uid). /app is its working directory and is writable by it.
RUN groupadd --gid 1000 account \
 && useradd --uid 1000 --gid account --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin account \
 && install -d -o account -g account -m 0755 /app

COPY --from=builder /out/account /usr/local/bin/account

USER account
WORKDIR /app
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/account"]
