#!/usr/bin/env bash
# Runs the load measurements recorded in BENCHMARKS.md: keyhold (release) against the
# bare-hyper baseline, plain HTTP and HTTPS, log levels, the 1800 req/s open loop, and
# luna on SoftHSM2. Each figure is run RUNS times (interleaved) and the median printed.
#
#   cargo build --release            # keyhold, libplugin_ctm.so, libplugin_luna.so
#   cargo build --release -p keyhold-benches --bin xks-load
#   benches/load.sh [RUNS] [SECONDS]   (defaults 3 and 10; BENCH_BIN_DIR overrides target/release;
#                                       SKIP_OPS=1 skips the per-operation table;
#                                       BENCH_GROUPS="http https luna open handshake ops" picks groups;
#                                       LUNA_INLINE=false|true|auto sets the luna source's
#                                       inline_calls, default false)
#
# Groups: http (bare hyper vs keyhold/ctm, warn and info logging), https (bare hyper +
# rustls vs keyhold/ctm), luna (the token's own speed through cryptoki, `xks-load pkcs11`,
# interleaved with keyhold/luna: encrypt, decrypt, encrypt with CDIV), open (1800 req/s
# open loop: ctm as before, and ctm and luna with fresh signatures and info logging),
# handshake (new TLS connections per second, full and resumed, development ECDSA P-256
# certificate and an RSA-2048 one), ops (every operation and size).
#
# Everything lives in a fresh temporary directory; servers listen on loopback ports
# 18080-18090 and 19080/19443 and are stopped (by their pid) at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BENCH_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}"
RUNS="${1:-3}"
SECS="${2:-10}"
CONNS=32
WORK="$(mktemp -d /tmp/keyhold-load.XXXXXX)"
LOAD="$BIN/xks-load"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

for f in keyhold xks-load libplugin_ctm.so; do
    [[ -x "$BIN/$f" || -f "$BIN/$f" ]] || { echo "missing $BIN/$f: build first (see header)" >&2; exit 1; }
done

echo "# $(date -u +%FT%TZ) nproc=$(nproc) $(grep -m1 'model name' /proc/cpuinfo)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# A copy of the conformance config with its own data dir, port and TLS choice.
config() { # name port plain(true|false) [source-config-file]
    local dir="$WORK/$1"
    mkdir -p "$dir"
    sed -e "s|^data_dir = .*|data_dir = \"$dir/data\"|" \
        -e "s|\"data/conformance/ctm-master.key\"|\"$dir/data/ctm-master.key\"|" \
        -e "s|^listen = .*|listen = \"127.0.0.1:$2\"|" \
        -e "s|^plain_http = .*|plain_http = $3|" \
        "$ROOT/config/examples/conformance.toml" > "$dir/keyhold.toml"
    printf '\n[plugins]\ndir = "%s"\n' "$BIN" >> "$dir/keyhold.toml"
    echo "$dir/keyhold.toml"
}

wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }

start_keyhold() { # name port plain log-level [config]
    local cfg="${5:-$(config "$1" "$2" "$3")}"
    RUST_LOG="$4" "$BIN/keyhold" serve --config "$cfg" > "$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    wait_port "$2"
}

BENCH_GROUPS="${BENCH_GROUPS:-http https luna open handshake ops}"
[[ -n "${SKIP_OPS:-}" ]] && BENCH_GROUPS="${BENCH_GROUPS//ops/}"
want() { [[ " $BENCH_GROUPS " == *" $1 "* ]]; }

start_keyhold plain-warn 18080 true warn
start_keyhold plain-info 18081 true info
start_keyhold tls-warn 18443 false warn
"$LOAD" baseline-server --listen 127.0.0.1:19080 --max-seconds 3600 2> "$WORK/base-plain.log" &
PIDS+=($!)
"$LOAD" baseline-server --listen 127.0.0.1:19443 --tls --data-dir "$WORK/base-tls" --max-seconds 3600 2> "$WORK/base-tls.log" &
PIDS+=($!)
wait_port 19080
wait_port 19443

# Luna on a fresh SoftHSM2 token (keyhold creates the keys the config declares).
LUNA=""
if [[ -f /usr/lib/softhsm/libsofthsm2.so ]] && command -v softhsm2-util > /dev/null && [[ -f "$BIN/libplugin_luna.so" ]]; then
    L="$WORK/luna"
    mkdir -p "$L/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$L/tokens" > "$L/softhsm2.conf"
    echo "bench-user-pin-5678" > "$L/user.pin"
    chmod 600 "$L/user.pin"
    for t in keyhold-bench keyhold-bench-info; do
        SOFTHSM2_CONF="$L/softhsm2.conf" softhsm2-util --init-token --free --label $t \
            --so-pin bench-so-pin-1234 --pin bench-user-pin-5678 > /dev/null
    done
    LI="${LUNA_INLINE:-false}"
    [[ "$LI" == auto ]] && LI='"auto"'
    sed -e "s|^data_dir = .*|data_dir = \"$L/state\"|" \
        -e "s|^listen = .*|listen = \"127.0.0.1:18090\"|" \
        -e "s|^token_label = .*|token_label = \"keyhold-bench\"|" \
        -e "s|^pin_file = .*|pin_file = \"$L/user.pin\"|" \
        -e "s|^module_env = .*|module_env = { SOFTHSM2_CONF = \"$L/softhsm2.conf\" }|" \
        -e "s|^inline_calls = .*|inline_calls = $LI|" \
        "$ROOT/config/examples/luna.toml" > "$L/keyhold.toml"
    printf '\n[plugins]\ndir = "%s"\n' "$BIN" >> "$L/keyhold.toml"
    SOFTHSM2_CONF="$L/softhsm2.conf" start_keyhold luna 18090 true warn "$L/keyhold.toml"
    # The same store on a second token, info logging (one line per request, to a file),
    # for the open loop with fresh signatures.
    sed -e "s|^data_dir = .*|data_dir = \"$L/state-info\"|" -e "s|127.0.0.1:18090|127.0.0.1:18091|" \
        -e "s|^token_label = .*|token_label = \"keyhold-bench-info\"|" \
        "$L/keyhold.toml" > "$L/keyhold-info.toml"
    SOFTHSM2_CONF="$L/softhsm2.conf" start_keyhold luna-info 18091 true info "$L/keyhold-info.toml"
    LUNA=1
else
    echo "# luna: SKIPPED (softhsm2 or libplugin_luna.so missing)"
fi

# The same HTTPS store with an RSA-2048 certificate (openssl), next to the generated
# development certificate (ECDSA P-256, rcgen's default), for the handshake figures.
if want handshake; then
    R="$WORK/rsa-pki"
    mkdir -p "$R"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$R/ca.key" -out "$R/ca.pem" -days 2 \
        -subj /CN=bench-rsa-ca 2> /dev/null
    openssl req -newkey rsa:2048 -nodes -keyout "$R/server.key" -out "$R/server.csr" -subj /CN=localhost 2> /dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > "$R/ext"
    openssl x509 -req -in "$R/server.csr" -CA "$R/ca.pem" -CAkey "$R/ca.key" -CAcreateserial \
        -out "$R/server.pem" -days 2 -extfile "$R/ext" 2> /dev/null
    cfg="$(config tls-rsa 18444 false)"
    printf '\n[xks.tls]\ncert_file = "%s"\nkey_file = "%s"\n' "$R/server.pem" "$R/server.key" >> "$cfg"
    start_keyhold tls-rsa 18444 false warn "$cfg"
fi

CA_K="$WORK/tls-warn/data/tls/ca.pem"
CA_B="$WORK/base-tls/tls/ca.pem"
RESULTS="$WORK/results.jsonl"

# run LABEL SECONDS xks-load-args...: appends {"label":..., ...} lines.
run() {
    local label="$1" secs="$2"
    shift 2
    "$LOAD" run --json -d "$secs" --warmup 2 "$@" | grep '^{' | sed "s|^{|{\"label\":\"$label\",|" >> "$RESULTS"
}

# run_hs LABEL SECONDS xks-load-handshake-args...: new TLS connections per second.
run_hs() {
    local label="$1" secs="$2"
    shift 2
    "$LOAD" handshake --json -d "$secs" --warmup 1 -c 8 "$@" | grep '^{' | sed "s|^{|{\"label\":\"$label\",|" >> "$RESULTS"
}

# pkcs11 LABEL SECONDS xks-load-pkcs11-args...: the token's own speed, same result lines.
pkcs11() {
    local label="$1" secs="$2"
    shift 2
    SOFTHSM2_CONF="$L/softhsm2.conf" "$LOAD" pkcs11 --json -d "$secs" --warmup 2 --token-label keyhold-bench \
        --pin-file "$L/user.pin" "$@" | grep '^{' | sed "s|^{|{\"label\":\"$label\",|" >> "$RESULTS"
}

for i in $(seq "$RUNS"); do
    echo "# round $i, load $(cut -d' ' -f1-3 /proc/loadavg)"
    if want http; then
        run base-http "$SECS" --target http://127.0.0.1:19080 -c $CONNS
        run keyhold-http-warn "$SECS" --target http://127.0.0.1:18080 -c $CONNS
        run keyhold-http-info "$SECS" --target http://127.0.0.1:18081 -c $CONNS
    fi
    if want https; then
        run base-https "$SECS" --target https://127.0.0.1:19443 --cacert "$CA_B" -c $CONNS
        run keyhold-https-warn "$SECS" --target https://127.0.0.1:18443 --cacert "$CA_K" -c $CONNS
    fi
    if want luna && [[ -n "$LUNA" ]]; then
        pkcs11 pkcs11 "$SECS" -c $CONNS --op encrypt
        run luna-http-warn "$SECS" --target http://127.0.0.1:18090 -c $CONNS
        pkcs11 pkcs11 "$SECS" -c $CONNS --op decrypt
        run luna-http-warn "$SECS" --target http://127.0.0.1:18090 -c $CONNS --op decrypt
        run luna-http-warn "$SECS" --target http://127.0.0.1:18090 -c $CONNS --cdiv
    fi
    if want open; then
        run keyhold-open-1800 $((SECS * 2)) --target http://127.0.0.1:18080 -c $CONNS --rate 1800
        run keyhold-open-1800-info-fresh $((SECS * 2)) --target http://127.0.0.1:18081 -c $CONNS --rate 1800 --sign fresh
        [[ -n "$LUNA" ]] && run luna-open-1800-info-fresh $((SECS * 2)) --target http://127.0.0.1:18091 -c $CONNS --rate 1800 --sign fresh
    fi
    if want handshake; then
        for kind in full resume; do
            flag=""
            [[ $kind == resume ]] && flag="--resume"
            run_hs tls-dev-p256-$kind $((SECS / 2)) --target https://127.0.0.1:18443 --cacert "$CA_K" $flag
            run_hs tls-rsa2048-$kind $((SECS / 2)) --target https://127.0.0.1:18444 --cacert "$R/ca.pem" $flag
        done
    fi
    if want ops; then
        run keyhold-ops $((SECS / 2)) --target http://127.0.0.1:18080 -c $CONNS --op health,metadata,encrypt,decrypt --size 32,4300
        run base-ops $((SECS / 2)) --target http://127.0.0.1:19080 -c $CONNS --op health,metadata,encrypt,decrypt --size 32,4300
    fi
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$RESULTS" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
# Per-round ratios (rows of a label in run order: round i of a is paired with round i of b).
def per_round(a, b, op="encrypt"):
    ra = [r["rps"] for r in rows if r["label"] == a and r["op"] == op and r["size"] == 32 and r["mode"] == "closed"]
    rb = [r["rps"] for r in rows if r["label"] == b and r["op"] == op and r["size"] == 32 and r["mode"] == "closed"]
    rs = [x / y for x, y in zip(ra, rb) if y]
    return (f"{st.median(rs):.1%} (rounds: " + ", ".join(f"{r:.0%}" for r in rs) + ")") if rs else "n/a"
groups = {}
for r in rows:
    key = (r["label"], r["op"], r["size"], r["mode"])
    groups.setdefault(key, []).append(r)
med = {}
print(f'{"label":22} {"op":8} {"size":>5} {"mode":12} {"req/s":>8} {"p50":>6} {"p99":>6} {"p99.9":>7} {"max":>7}  errors   (median of n runs, us)')
for key, rs in groups.items():
    m = {k: st.median(r[k] for r in rs) for k in ("rps", "p50_us", "p99_us", "p999_us", "max_us")}
    errs = sum(sum(r["errors"].values()) for r in rs)
    med[key] = m
    label, op, size, mode = key
    print(f'{label:22} {op:8} {str(size):>5} {mode:12} {m["rps"]:8.0f} {m["p50_us"]:6.0f} {m["p99_us"]:6.0f} {m["p999_us"]:7.0f} {m["max_us"]:7.0f}  {errs}  n={len(rs)}  all rps={[r["rps"] for r in rs]}')
    for r in rs:
        if r["errors"]:
            print("     errors:", r["errors"])
def rps(label, op="encrypt", size=32, mode="closed"):
    return med.get((label, op, size, mode), {}).get("rps")
def ratio(a, b):
    return f"{a / b:.1%}" if a and b else "n/a"
print()
print("keyhold/baseline plain HTTP :", ratio(rps("keyhold-http-warn"), rps("base-http")))
print("keyhold/baseline HTTPS      :", ratio(rps("keyhold-https-warn"), rps("base-https")))
print("info/warn logging           :", ratio(rps("keyhold-http-info"), rps("keyhold-http-warn")))
print("luna/ctm                    :", ratio(rps("luna-http-warn"), rps("keyhold-http-warn")))
print("median of per-round ratios:")
print("  ctm/bare hyper, plain HTTP :", per_round("keyhold-http-warn", "base-http"))
print("  ctm/bare hyper, HTTPS      :", per_round("keyhold-https-warn", "base-https"))
print("  luna/pkcs11 encrypt        :", per_round("luna-http-warn", "pkcs11"))
print("  luna/pkcs11 decrypt        :", per_round("luna-http-warn", "pkcs11", "decrypt"))
print("  luna encrypt+CDIV/encrypt  :", ratio(rps("luna-http-warn", "encrypt-cdiv"), rps("luna-http-warn")))
for (label, op, size, mode), m in med.items():
    if op == "handshake":
        rs = groups[(label, op, size, mode)]
        res = sum(r.get("resumed", 0) for r in rs)
        tot = res + sum(r.get("full", 0) for r in rs)
        print(f"handshakes {label}: {m['rps']:.0f}/s median, p50 {m['p50_us']:.0f} us, resumed {res}/{tot}")
for (label, op, size, mode), m in med.items():
    if label == "keyhold-ops":
        print(f"ops {op} {size}: keyhold/baseline = {ratio(m['rps'], rps('base-ops', op, size))}")
PY
echo "# raw results: $RESULTS; server logs in $WORK"
trap - EXIT
cleanup
