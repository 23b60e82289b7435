#!/usr/bin/env bash
# Sign-in benchmarks (bench/README.md has the figures and how to read them).
# Starts the release server on a fresh data directory (SQLite; PostgreSQL for the
# refresh run when BENCH_POSTGRES_URL is set), creates an account, then drives it
# with wrk on loopback. Each run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-15s}"
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet -p latchkey
cargo build --release --quiet -p latchkey-core --example argon2_rate

start_server() { # $1: extra env assignments
  data="$(mktemp -d)"; out="$(mktemp)"
  # Rate limits off: this measures the work per request, not the quotas (which
  # would answer most of these logins and refreshes with 429; bench/ratelimit.sh
  # measures the limiter itself). A lockout threshold no burst reaches: one
  # account at 16 connections would meet the lockout's 429 for attempts in flight.
  env LATCHKEY_LOG__LEVEL=error LATCHKEY_AUTH__REQUIRE_EMAIL_VERIFICATION=false \
    LATCHKEY_RATE_LIMIT__ENABLED=false LATCHKEY_LOCKOUT__THRESHOLD=4000000000 \
    LATCHKEY_SESSIONS__MAX_PER_USER=100000000 $1 \
    ./target/release/latchkey serve --listen 127.0.0.1:0 --data-dir "$data" >"$out" &
  pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$out" && break; sleep 0.1; done
  url="$(sed -n 's/^latchkey listening on //p' "$out")"
}
stop_server() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data" "$out"; }
trap 'stop_server' EXIT
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
signup() {
  curl -sf "$url/v1/signup" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"correct horse battery staple"}' >/dev/null
}
login() { # no User-Agent, as wrk sends none: the refresh chains stay on one device
  curl -sf -A '' "$url/v1/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"correct horse battery staple"}'
}
summary() { grep -E "Requests/sec|^ +(50|99)%|Non-2xx" ; }

echo "== raw Argon2id (latchkey's hasher, default parameters, one hash per core)"
./target/release/examples/argon2_rate 10

start_server ""
signup
export ACCESS_TOKEN="$(login | json_field access_token)"
echo "== GET /healthz, 64 connections"
wrk -t2 -c64 -d"$DURATION" --latency "$url/healthz" | summary
echo "== GET /v1/me with a valid access token, 64 connections"
wrk -t2 -c64 -d"$DURATION" --latency -s bench/lua/me.lua "$url/v1/me" | summary
echo "== POST /v1/login (correct password), 16 connections"
wrk -t2 -c16 -d"$DURATION" --latency -s bench/lua/login.lua "$url/v1/login" | summary
echo "== GET /v1/me, 16 connections, while 16 connections of logins saturate the hash pool"
wrk -t1 -c16 -d"$DURATION" -s bench/lua/login.lua "$url/v1/login" >/dev/null &
loginpid=$!
sleep 1
wrk -t1 -c16 -d"$DURATION" --latency -s bench/lua/me.lua "$url/v1/me" | summary
wait "$loginpid" || true
refresh_run() {
  tokens=""
  for _ in 1 2 3 4; do tokens="$tokens $(login | json_field refresh_token)"; done
  REFRESH_TOKENS="$tokens" wrk -t4 -c4 -d"$DURATION" --latency -s bench/lua/refresh.lua "$url/v1/token/refresh" | summary
}
echo "== POST /v1/token/refresh on SQLite, 4 chains (4 connections)"
refresh_run
stop_server

if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  schema="lkbench_$$"
  psql -q "$BENCH_POSTGRES_URL" -c "CREATE SCHEMA $schema"
  start_server "LATCHKEY_DATABASE__URL=${BENCH_POSTGRES_URL}?options=-c%20search_path%3D$schema"
  signup
  echo "== POST /v1/token/refresh on PostgreSQL, 4 chains (4 connections)"
  refresh_run
  stop_server
  psql -q "$BENCH_POSTGRES_URL" -c "DROP SCHEMA $schema CASCADE"
fi
