# The fulfil node in a container: built in one stage, run from a small
# image as a user without privileges.
#
#   docker build -t fulfil .                           # or, with the OTLP exporter:
#   docker build --build-arg FEATURES=otlp -t fulfil .
#   docker run -p 8080:8080 -v fulfil-data:/var/lib/fulfil \
#     -v "$PWD/keys.txt:/etc/fulfil/keys.txt:ro" -e FULFIL_AUTH__KEYS_FILE=/etc/fulfil/keys.txt fulfil
#
# The node listens on 0.0.0.0:8080 in the container, so it needs API keys
# (a keys file, see the README's "Who may do what"): without any it refuses
# to start rather than serve anyone who can reach it.

FROM rust:1.95-slim-trixie AS build
# Cargo features to build in: "otlp" for the OpenTelemetry exporter.
ARG FEATURES=""
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin fulfil --features "$FEATURES"

FROM debian:trixie-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/fulfil --create-home fulfil
COPY --from=build /src/target/release/fulfil /usr/local/bin/fulfil
COPY config.toml /etc/fulfil/config.toml
ENV FULFIL_HTTP__BIND=0.0.0.0:8080 \
    FULFIL_STORE__PATH=/var/lib/fulfil/data \
    FULFIL_LOG__FORMAT=json
USER 10001:10001
WORKDIR /var/lib/fulfil
VOLUME ["/var/lib/fulfil"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["fulfil", "probe"]
ENTRYPOINT ["fulfil", "--config", "/etc/fulfil/config.toml"]
CMD ["serve"]
