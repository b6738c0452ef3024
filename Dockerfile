# Relay's container image: built in one stage, run from a small one as a non-root user.
#   docker build -t relay .
#   docker run -p 6001:6001 -v $PWD/config.toml:/etc/relay/config.toml relay
# The configuration is read from /etc/relay/config.toml; its [server] host must be 0.0.0.0 to be
# reachable from outside the container (deploy/cluster.toml, which docker-compose.yml uses, is).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY relay-bench ./relay-bench
RUN cargo build --locked --release -p relay --bin relay

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/relay --create-home relay
COPY --from=build /src/target/release/relay /usr/local/bin/relay
COPY deploy/cluster.toml /etc/relay/config.toml
USER relay
WORKDIR /var/lib/relay
ENV RELAY_CONFIG=/etc/relay/config.toml
EXPOSE 6001
# `relay health` asks this node's GET /ready (200 only while it serves and, with [redis], reaches
# Redis), so the image needs no curl.
HEALTHCHECK --interval=5s --timeout=4s --start-period=5s --retries=3 CMD ["relay", "health"]
ENTRYPOINT ["relay"]
