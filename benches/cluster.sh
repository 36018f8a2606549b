#!/usr/bin/env bash
# The cluster figures of BENCHMARKS.md: XKS encrypt throughput of 1, 2 and 3 keyhold
# nodes on a 3-member etcd behind xks-load's round-robin client (next to one standalone
# node on the embedded store), and the propagation delay of a change between nodes.
#
#   cargo build --release -p keyhold -p plugin-ctm -p keyhold-benches
#   benches/cluster.sh [RUNS] [SECONDS]   (defaults 3 and 8; BENCH_BIN_DIR overrides
#                                          target/release)
#
# scripts/cluster.sh starts the cluster from config/examples/cluster-node{1,2,3}.toml in a
# fresh temporary directory; the three nodes run throughout, and "N nodes" means
# xks-load spreads its requests round-robin over the first N. The standalone node is
# the conformance example on 127.0.0.1:18080. Everything is stopped (by pid) at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BENCH_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}"
RUNS="${1:-3}"
SECS="${2:-8}"
CONNS=32
WORK="$(mktemp -d /tmp/keyhold-cluster-bench.XXXXXX)"
export KEYHOLD_CLUSTER_DIR="$WORK/cluster" KEYHOLD_BIN="$BIN/keyhold"
LOAD="$BIN/xks-load"
STANDALONE=""
cleanup() {
    [[ -n "$STANDALONE" ]] && kill "$STANDALONE" 2> /dev/null || true
    "$ROOT/scripts/cluster.sh" stop > /dev/null || true
}
trap cleanup EXIT

for f in keyhold xks-load libplugin_ctm.so; do
    [[ -f "$BIN/$f" ]] || { echo "missing $BIN/$f: build first (see header)" >&2; exit 1; }
done
echo "# $(date -u +%FT%TZ) nproc=$(nproc) $(grep -m1 'model name' /proc/cpuinfo)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"

"$ROOT/scripts/cluster.sh" start > "$WORK/cluster-start.log"
mkdir -p "$WORK/standalone"
sed -e "s|^data_dir = .*|data_dir = \"$WORK/standalone/data\"|" \
    -e "s|\"data/conformance/ctm-master.key\"|\"$WORK/standalone/data/ctm-master.key\"|" \
    -e "s|^listen = .*|listen = \"127.0.0.1:18080\"|" \
    "$ROOT/config/examples/conformance.toml" > "$WORK/standalone/keyhold.toml"
RUST_LOG=warn "$BIN/keyhold" serve --config "$WORK/standalone/keyhold.toml" > "$WORK/standalone.log" 2>&1 &
STANDALONE=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/18080) 2> /dev/null && break; sleep 0.1; done

N1=http://127.0.0.1:8081
N2=http://127.0.0.1:8082
N3=http://127.0.0.1:8083
RESULTS="$WORK/results.jsonl"
run() { # LABEL TARGETS
    "$LOAD" run --json -d "$SECS" --warmup 2 -c $CONNS --op encrypt --size 32 --target "$2" |
        grep '^{' | sed "s|^{|{\"label\":\"$1\",|" >> "$RESULTS"
}
for i in $(seq "$RUNS"); do
    echo "# round $i, load $(cut -d' ' -f1-3 /proc/loadavg)"
    run standalone http://127.0.0.1:18080
    run 1-node "$N1"
    run 2-nodes "$N1,$N2"
    run 3-nodes "$N1,$N2,$N3"
done
echo "# load after throughput: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "# propagation: changes made through node 1's admin API, observed on node 2's XKS endpoint"
"$LOAD" propagation --admin http://127.0.0.1:9091 --target "$N2" \
    --password-file "$KEYHOLD_CLUSTER_DIR/root-password" --rounds 20 --json | tee "$WORK/propagation.txt"

python3 - "$RESULTS" << 'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = {}
for r in rows:
    groups.setdefault(r["label"], []).append(r)
print()
print(f'{"label":12} {"req/s":>8} {"p50":>6} {"p99":>6} {"p99.9":>7}  errors  (median of n runs, us)')
for label, rs in groups.items():
    m = {k: st.median(r[k] for r in rs) for k in ("rps", "p50_us", "p99_us", "p999_us")}
    errs = sum(sum(r["errors"].values()) for r in rs)
    print(f'{label:12} {m["rps"]:8.0f} {m["p50_us"]:6.0f} {m["p99_us"]:6.0f} {m["p999_us"]:7.0f}  {errs}  n={len(rs)} all rps={[r["rps"] for r in rs]}')
PY
echo "# raw results: $RESULTS; logs in $WORK and $KEYHOLD_CLUSTER_DIR/logs"
