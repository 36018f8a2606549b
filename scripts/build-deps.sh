#!/usr/bin/env bash
# Installs what building keyhold needs beyond Rust, when missing: `protoc` (Debian's
# protobuf-compiler), which the etcd client's build compiles etcd's gRPC API with.
set -euo pipefail
if ! command -v protoc >/dev/null 2>&1; then
    echo "==> installing protobuf-compiler (protoc, for the etcd client's build)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq protobuf-compiler >/dev/null
fi
