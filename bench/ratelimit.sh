#!/usr/bin/env bash
# Overhead of the rate-limit check on GET /v1/me (bench/README.md has the figures):
# the same release server without limits, with the in-process limiter and with the
# Redis limiter (REDIS_URL, default redis://127.0.0.1:6379). The read rule's quota is
# set far above what wrk can send, so every request is checked and admitted.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-15s}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet -p latchkey

conf="$(mktemp --suffix=.toml)"
cat >"$conf" <<'TOML'
[[rate_limit.rules]]
name = "read-user"
route = "read"
key = "user"
limit = 1000000000
window_seconds = 60
TOML

run() { # $1: label, $2: extra env assignments
  data="$(mktemp -d)"; out="$(mktemp)"
  env LATCHKEY_LOG__LEVEL=error LATCHKEY_AUTH__REQUIRE_EMAIL_VERIFICATION=false $2 \
    ./target/release/latchkey serve --config "$conf" --listen 127.0.0.1:0 --data-dir "$data" >"$out" &
  pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$out" && break; sleep 0.1; done
  url="$(sed -n 's/^latchkey listening on //p' "$out")"
  curl -sf "$url/v1/signup" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"correct horse battery staple"}' >/dev/null
  ACCESS_TOKEN="$(curl -sf "$url/v1/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"correct horse battery staple"}' |
    python3 -c "import json,sys; print(json.load(sys.stdin)['access_token'])")"
  export ACCESS_TOKEN
  echo "== GET /v1/me, 64 connections: $1"
  wrk -t2 -c64 -d"$DURATION" --latency -s bench/lua/me.lua "$url/v1/me" |
    grep -E "Requests/sec|^ +(50|99)%|Non-2xx"
  kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$data" "$out"
}

run "rate limits off" "LATCHKEY_RATE_LIMIT__ENABLED=false"
run "in-process limiter" ""
run "Redis limiter" "LATCHKEY_REDIS__URL=$REDIS_URL LATCHKEY_REDIS__KEY_PREFIX=bench-$$:"
rm -f "$conf"
