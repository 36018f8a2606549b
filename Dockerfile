# syntax=docker/dockerfile:1
# keyhold in a container: the server, the PKCS#11 token helper and the ctm and luna
# plugins, running as an unprivileged user with its state on a volume.
#
#   docker build --build-arg KEYHOLD_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t keyhold .
#   docker run -d --name keyhold -v keyhold-data:/var/lib/keyhold \
#     -p 127.0.0.1:8443:8443 -p 127.0.0.1:8444:8444 keyhold
#
# README.md, "Run in a container", says more (configuration, the first start's root
# password, HSMs).

# --- build: the release binaries (protoc for the etcd client's build) ----------------
FROM rust:1-bookworm AS build
# Debian's packages of the base image's release (not pinned: security updates apply).
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The build context has no .git (.dockerignore): the commit `keyhold --version` shows
# comes from this argument ("unknown" without it).
ARG KEYHOLD_GIT_COMMIT=unknown
ENV KEYHOLD_GIT_COMMIT=${KEYHOLD_GIT_COMMIT}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p keyhold -p plugin-ctm -p plugin-luna \
    && mkdir -p /out/bin /out/plugins \
    && cp target/release/keyhold target/release/keyhold-pkcs11 /out/bin/ \
    && cp target/release/libplugin_ctm.so target/release/libplugin_luna.so /out/plugins/

# --- runtime: Debian slim, no compiler, no shell tools beyond the base ----------------
FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 keyhold \
    && useradd --system --uid 10001 --gid keyhold --home-dir /var/lib/keyhold \
        --no-create-home --shell /usr/sbin/nologin keyhold \
    && install -d -o keyhold -g keyhold -m 0750 /var/lib/keyhold
COPY --from=build /out/bin/keyhold /out/bin/keyhold-pkcs11 /usr/bin/
# The plugin directory the configuration names ([plugins] dir).
COPY --from=build /out/plugins/libplugin_ctm.so /out/plugins/libplugin_luna.so /usr/lib/keyhold/plugins/
# The Debian package's configuration: data_dir /var/lib/keyhold, the plugins above,
# a ctm key source; replace it with a bind mount of your own (-v ...:/etc/keyhold:ro).
COPY packaging/keyhold.toml /etc/keyhold/keyhold.toml
# Inside the container the listeners must take connections from outside its network
# namespace; which host addresses reach them is decided by `docker run -p`.
ENV KEYHOLD_XKS__LISTEN=0.0.0.0:8443 \
    KEYHOLD_ADMIN__LISTEN=0.0.0.0:8444 \
    KEYHOLD_SERVER=https://127.0.0.1:8444 \
    KEYHOLD_CACERT=/var/lib/keyhold/tls/ca.pem
# State: the store, the audit log, generated master keys, TLS files, root-password.
VOLUME ["/var/lib/keyhold"]
WORKDIR /var/lib/keyhold
USER 10001:10001
# XKS (HTTPS), admin API (HTTPS).
EXPOSE 8443 8444
# Healthy when the admin API answers over its TLS (its OpenAPI document needs no
# login), asked by the CLI that is in the image anyway.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/sh", "-c", "/usr/bin/keyhold openapi > /dev/null"]
ENTRYPOINT ["/usr/bin/keyhold"]
CMD ["serve", "--config", "/etc/keyhold/keyhold.toml"]
