#!/usr/bin/env bash
# A keyhold cluster on loopback: a 3-member etcd and three keyhold nodes started from
# config/examples/cluster-node{1,2,3}.toml.
#
#   cargo build --release          # keyhold and libplugin_ctm.so
#   scripts/cluster.sh [start]     # start everything, wait until every node serves
#   scripts/cluster.sh status      # which processes run
#   scripts/cluster.sh stop        # stop the nodes, then etcd (the data stays)
#
# Environment:
#   KEYHOLD_CLUSTER_DIR  where everything lives (default ./cluster-data): etcd<i>/ and
#                        node<i>/ data, the shared key files, node<i>.toml (the example
#                        with its paths moved here), logs/, pids/
#   KEYHOLD_BIN          the keyhold binary (default: target/release/keyhold, else
#                        target/debug/keyhold, under $CARGO_TARGET_DIR when set); its
#                        directory holds libplugin_ctm.so
#   ETCD                 the etcd binary (default: etcd; Debian's etcd-server)
#
# Ports: etcd clients 127.0.0.1:23791-23793 (peers 23801-23803); keyhold XKS
# 127.0.0.1:8081-8083, admin API 127.0.0.1:9091-9093 (plain HTTP, loopback only).
# First start: the master key, the ctm master key and the root password are generated
# (mode 0600) into the data directory; every node uses the same ones.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${KEYHOLD_CLUSTER_DIR:-$PWD/cluster-data}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
ETCD="${ETCD:-etcd}"
NODES=(1 2 3)
PEERS="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"

keyhold_bin() {
    if [[ -n "${KEYHOLD_BIN:-}" ]]; then echo "$KEYHOLD_BIN"; return; fi
    local target="${CARGO_TARGET_DIR:-$ROOT/target}"
    for profile in release debug; do
        if [[ -x "$target/$profile/keyhold" ]]; then echo "$target/$profile/keyhold"; return; fi
    done
    echo "no keyhold binary under $target: run cargo build --release (or set KEYHOLD_BIN)" >&2
    exit 1
}

# pid NAME: the recorded pid of NAME when that process still runs.
pid() {
    local f="$DIR/pids/$1.pid"
    [[ -f "$f" ]] || return 1
    local p
    p="$(cat "$f")"
    kill -0 "$p" 2> /dev/null && echo "$p"
}

# wait_for URL EXPECT NAME: polls URL (at most 60 s) until its body contains EXPECT.
wait_for() {
    for _ in $(seq 600); do
        if curl -fsS --max-time 2 "$1" 2> /dev/null | grep -q "$2"; then return 0; fi
        if ! pid "$3" > /dev/null; then
            echo "$3 exited; the end of $DIR/logs/$3.log:" >&2
            tail -n 20 "$DIR/logs/$3.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "$3 did not answer $1 within 60 s (see $DIR/logs/$3.log)" >&2
    exit 1
}

# secret FILE COMMAND...: writes COMMAND's output to FILE (mode 0600) when FILE is missing.
secret() {
    local file="$1"
    shift
    [[ -s "$file" ]] && return 0
    (umask 077 && "$@" > "$file")
}

start() {
    command -v "$ETCD" > /dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 1; }
    command -v curl > /dev/null || { echo "curl not found: apt-get install curl" >&2; exit 1; }
    local bin
    bin="$(keyhold_bin)"
    mkdir -p "$DIR/logs" "$DIR/pids"
    for i in "${NODES[@]}"; do
        if pid "etcd$i" > /dev/null || pid "node$i" > /dev/null; then
            echo "already running (scripts/cluster.sh status; scripts/cluster.sh stop)" >&2
            exit 1
        fi
    done

    for i in "${NODES[@]}"; do
        local url="http://127.0.0.1:2379$i"
        "$ETCD" --name "e$i" --data-dir "$DIR/etcd$i" \
            --listen-client-urls "$url" --advertise-client-urls "$url" \
            --listen-peer-urls "http://127.0.0.1:2380$i" \
            --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
            --initial-cluster "$PEERS" --initial-cluster-state new \
            --initial-cluster-token keyhold-cluster > "$DIR/logs/etcd$i.log" 2>&1 &
        echo $! > "$DIR/pids/etcd$i.pid"
    done
    for i in "${NODES[@]}"; do
        wait_for "http://127.0.0.1:2379$i/health" '"health":"true"' "etcd$i"
    done
    echo "etcd: 3 members healthy on 127.0.0.1:23791-23793"

    secret "$DIR/master.key" sh -c 'head -c 32 /dev/urandom | base64'
    secret "$DIR/ctm.key" sh -c 'head -c 32 /dev/urandom | base64'
    secret "$DIR/root-password" sh -c "head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24"
    local password
    password="$(cat "$DIR/root-password")"

    # One after the other: the first start of a fresh cluster creates the declared store
    # and the root user once; later nodes find them.
    for i in "${NODES[@]}"; do
        sed -e "s|\"cluster-data/|\"$DIR/|g" "$ROOT/config/examples/cluster-node$i.toml" > "$DIR/node$i.toml"
        KH_CLUSTER_ROOT_PASSWORD="$password" RUST_LOG="${RUST_LOG:-warn}" \
            "$bin" serve --config "$DIR/node$i.toml" > "$DIR/logs/node$i.log" 2>&1 &
        echo $! > "$DIR/pids/node$i.pid"
        wait_for "http://127.0.0.1:808$i/tenants/acme/keyhold-health" ACTIVE "node$i"
        echo "node$i: XKS http://127.0.0.1:808$i, admin http://127.0.0.1:909$i"
    done
    cat << EOF
cluster up ($bin, data in $DIR)
  root password: $DIR/root-password
  any node answers for the acme store of the examples, e.g. node 2:
    curl -s --aws-sigv4 aws:amz:us-east-1:kms-xks-proxy \\
      --user 7MSKH6YXF3BEX3H3APGWHMI42G:R2waUCZNy/ulj/7eURO1g5oc8XXokuDrR53OzOURNaM= \\
      -H 'content-type: application/json' \\
      -d '{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"h1"}}' \\
      http://127.0.0.1:8082/tenants/acme/kms/xks/v1/health
  manage it through any node:
    KEYHOLD_SERVER=http://127.0.0.1:9091 $bin login --user root --password-stdin < $DIR/root-password
  stop: scripts/cluster.sh stop
EOF
}

# stop_one NAME: SIGTERM, then SIGKILL after 15 s.
stop_one() {
    local p
    p="$(pid "$1")" || { rm -f "$DIR/pids/$1.pid"; return 0; }
    kill -TERM "$p" 2> /dev/null || true
    for _ in $(seq 150); do
        kill -0 "$p" 2> /dev/null || break
        sleep 0.1
    done
    if kill -0 "$p" 2> /dev/null; then
        echo "$1 (pid $p) did not stop within 15 s: SIGKILL" >&2
        kill -KILL "$p" 2> /dev/null || true
    fi
    rm -f "$DIR/pids/$1.pid"
    echo "$1 stopped"
}

stop() {
    for i in "${NODES[@]}"; do stop_one "node$i"; done
    for i in "${NODES[@]}"; do stop_one "etcd$i"; done
}

status() {
    for name in etcd1 etcd2 etcd3 node1 node2 node3; do
        if p="$(pid "$name")"; then echo "$name: running (pid $p)"; else echo "$name: stopped"; fi
    done
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *)
        echo "usage: scripts/cluster.sh [start|stop|status]" >&2
        exit 2
        ;;
esac
