#!/usr/bin/env bash
# HTTP load baseline: starts the release binary on a fresh data directory and drives
# it with wrk (Debian package `wrk`) on loopback. Bounded: each run lasts DURATION.
#
#   bench/http.sh                 # GET /healthz, 64 connections, 20 s
#   CONNECTIONS=16 DURATION=10s PATHNAME=/readyz bench/http.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-20s}"
THREADS="${THREADS:-2}"
PATHNAME="${PATHNAME:-/healthz}"

command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet -p latchkey

data="$(mktemp -d)"
out="$(mktemp)"
LATCHKEY_LOG__LEVEL=warn ./target/release/latchkey serve --listen 127.0.0.1:0 --data-dir "$data" >"$out" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data" "$out"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$out" && break; sleep 0.1; done
url="$(sed -n 's/^latchkey listening on //p' "$out")"
echo "server: $url  (rustc $(rustc --version | cut -d' ' -f2), $(nproc) cores)"

wrk -t"$THREADS" -c"$CONNECTIONS" -d5s "$url$PATHNAME" >/dev/null   # warm-up
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url$PATHNAME"
