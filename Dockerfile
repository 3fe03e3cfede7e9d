# tamtam gateway image: build in a full Rust image, run in a small Debian one.
#   docker build -t tamtam .
#   docker run -p 8080:8080 -e TAMTAM_REDIS_URL=redis://redis:6379 \
#       -v $PWD/prod.toml:/app/config/tamtam.toml tamtam
# The image listens on 0.0.0.0, where a channel without authentication is refused: the
# shipped demo configuration (open channels, meant for loopback) does not start here, so
# mount a configuration whose channels authenticate (README, "Security and limits").
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The test sources are declared in Cargo.toml; the build does not compile them.
COPY tests ./tests
RUN cargo build --release --locked --bin tamtam

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin tamtam
WORKDIR /app
COPY --from=build /src/target/release/tamtam /usr/local/bin/tamtam
COPY config ./config
COPY menus ./menus
COPY data ./data
USER tamtam
ENV TAMTAM_LISTEN=0.0.0.0:8080 \
    TAMTAM_CONFIG=/app/config/tamtam.toml \
    RUST_LOG=info
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# `serve` refuses to start on a broken configuration or menu, listing every problem.
CMD ["tamtam", "serve"]
