#!/usr/bin/env bash
# Runs keyhold's whole test suite on a fresh Debian machine: installs what the build and
# the tests need (protoc for the etcd client, SoftHSM2 for the luna plugin, curl with
# HTTP/2 for the SigV4 interop and early-answer tests - Debian's curl has it - etcd
# for the clustered store, cargo-deb with dpkg-dev and xz for the Debian package, and
# Debian's chromium with its chromedriver and NSS's certutil for the console's browser
# tests), builds every plugin and fixture library the tests load at run time, then runs
# every test, and the PKCS#11 suites once more on a PKCS#11 2.20 module (the test matrix
# of the luna plugin).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
# The Debian package: dpkg-shlibdeps and strip (dpkg-dev), xz for its archives.
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
command -v xz >/dev/null 2>&1 || need+=(xz-utils)
# The console's browser tests: headless chromium over WebDriver, trusting the test CA
# through an NSS database that certutil writes (Debian's packages; nothing downloads a
# browser of its own).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v certutil >/dev/null 2>&1 || need+=(libnss3-tools)
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# cargo-deb packages the Debian package tests/tests/package_deb.rs installs (pinned;
# without its default features it uses the system's xz instead of building liblzma,
# and skips debug-id support the package does not use).
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
    echo "==> installing cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --no-default-features
fi

echo "==> building the workspace (server, plugins incl. the template, test fixtures)"
cargo build --workspace --all-targets
# A plugin built against a frozen copy of keyhold-sdk 1.0.0, outside the workspace (it
# has its own keyhold-sdk package); tests/tests/plugins.rs would build it too.
cargo build --manifest-path tests/fixtures/sdk-1.0/Cargo.toml

echo "==> running the tests"
if cargo nextest --version >/dev/null 2>&1; then
    # Doc tests first (nextest does not run them), so that nextest's summary closes the run.
    cargo test --workspace --doc
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

# The test matrix of the PKCS#11 path: the luna plugin's suites and the server's luna
# suites again, with the plugin on tests/pkcs11-shim (a PKCS#11 2.20 module over
# SoftHSM2: no CKA_DESTROYABLE, token information cryptoki cannot parse) instead of
# SoftHSM2 itself.
echo "==> the luna suites again on a PKCS#11 2.20 module (tests/pkcs11-shim)"
export KEYHOLD_TEST_PKCS11_MODULE="${CARGO_TARGET_DIR:-$PWD/target}/debug/libkeyhold_pkcs11_shim.so"
luna_suites=(--test luna --test connections --test source_lifecycle --test source_cluster)
if cargo nextest --version >/dev/null 2>&1; then
    # --workspace with a filter, not -p: the same features as above, so nothing rebuilds.
    cargo nextest run --workspace --no-fail-fast -E 'package(plugin-luna) | (package(keyhold-tests) & (binary(=luna) | binary(=connections) | binary(=source_lifecycle) | binary(=source_cluster)))'
else
    cargo test -p plugin-luna --no-fail-fast
    cargo test -p keyhold-tests "${luna_suites[@]}" --no-fail-fast
fi
