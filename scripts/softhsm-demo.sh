#!/usr/bin/env bash
# Prepares a SoftHSM2 token for the PKCS#11 (luna) demo, config/examples/luna.toml.
#
#   scripts/softhsm-demo.sh        (from anywhere; paths are relative to the repo root)
#
# Creates, from scratch each time (re-running gives a fresh token):
#   data/luna/softhsm2.conf   SoftHSM2 configuration (tokendir data/luna/tokens, absolute)
#   data/luna/tokens/         the token store
#   data/luna/user.pin        the user PIN (mode 0600)
# a token labelled `keyhold-demo`, and its keys, created through the plugin itself by
# the built token helper `keyhold-pkcs11` (no Rust toolchain needed: it is taken from
# target/release, target/debug or PATH; `cargo build --release` builds it):
#   acme-health        ENCRYPT,DECRYPT,WRAP,UNWRAP  (the store's health-check key)
#   demo-key-1         ENCRYPT,DECRYPT,WRAP,UNWRAP
#   demo-encrypt-only  ENCRYPT
#   demo-decrypt-only  DECRYPT
#   demo-no-crypto     WRAP,UNWRAP
# Installs softhsm2 with apt-get when it is missing. Demo PINs only: never for real keys.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODULE="${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
LABEL="keyhold-demo"
DIR="$ROOT/data/luna"

if [[ ! -f "$MODULE" ]] || ! command -v softhsm2-util >/dev/null 2>&1; then
    echo "softhsm2 not found; installing it with apt-get" >&2
    SUDO=""
    [[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq softhsm2
fi

# The token helper: next to a built keyhold, or on PATH.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PKCS11_HELPER=""
for candidate in "$TARGET_DIR/release/keyhold-pkcs11" "$TARGET_DIR/debug/keyhold-pkcs11" \
    "$(command -v keyhold-pkcs11 || true)"; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then
        PKCS11_HELPER="$candidate"
        break
    fi
done
if [[ -z "$PKCS11_HELPER" ]]; then
    echo "keyhold-pkcs11 not found in $TARGET_DIR/release, $TARGET_DIR/debug or PATH:" >&2
    echo "build it with: cargo build --release   (or: cargo build -p plugin-luna --bins)" >&2
    exit 1
fi

# A fresh, disposable token store (the server's own state under data/luna/state too).
rm -rf "$DIR"
mkdir -p "$DIR/tokens"
cat > "$DIR/softhsm2.conf" <<CONF
directories.tokendir = $DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF="$DIR/softhsm2.conf"

SO_PIN="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
USER_PIN="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
( umask 077; printf '%s\n' "$USER_PIN" > "$DIR/user.pin" )
chmod 0600 "$DIR/user.pin"

softhsm2-util --init-token --free --label "$LABEL" --so-pin "$SO_PIN" --pin "$USER_PIN" >/dev/null
echo "initialised SoftHSM2 token '$LABEL' in $DIR/tokens"

keys() {
    "$PKCS11_HELPER" --module "$MODULE" --token "$LABEL" --pin-file "$DIR/user.pin" "$@"
}
keys create acme-health encrypt,decrypt,wrap,unwrap
keys create demo-key-1 encrypt,decrypt,wrap,unwrap
keys create demo-encrypt-only encrypt
keys create demo-decrypt-only decrypt
keys create demo-no-crypto wrap,unwrap
echo "keys of token '$LABEL':"
keys list
echo "ready: run the server with config/examples/luna.toml from $ROOT, with SOFTHSM2_CONF=$DIR/softhsm2.conf in its environment"
