#!/usr/bin/env bash
# Event delivery benchmarks (bench/README.md "Event delivery"), on SQLite:
#  1. webhook deliveries/s: an admin adds a webhook ("*") to a local receiver
#     (bench/events_clients.mjs), `latchkey users import` commits USERS
#     account_created events, and the script times until the receiver has them all;
#  2. sign-in throughput with and without that webhook: wrk POST /v1/login at 16
#     connections, WINDOW seconds each, ROUNDS interleaved pairs on fresh servers;
#  3. live streams: STREAMS open event streams, the server's memory before and
#     after, and the time one event takes to reach all of them.
#
#   bench/events.sh
#   USERS=20000 ROUNDS=2 WINDOW=10 STREAMS=1000 bench/events.sh
#   PARTS=login ROUNDS=4 bench/events.sh        # some of: deliveries login streams
set -euo pipefail
cd "$(dirname "$0")/.."
USERS="${USERS:-20000}"
ROUNDS="${ROUNDS:-2}"
WINDOW="${WINDOW:-10}"
STREAMS="${STREAMS:-1000}"
PARTS="${PARTS:-deliveries login streams}"
part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
command -v node >/dev/null || { echo "needs Node.js 20" >&2; exit 1; }
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet -p latchkey
ulimit -n 65536 2>/dev/null || true   # the streams: one socket each, on both ends
. bench/server.sh
password="correct horse battery staple"
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

port_file="$(mktemp)"
node bench/events_clients.mjs receiver "$port_file" &
receiver=$!
for _ in $(seq 1 50); do [ -s "$port_file" ] && break; sleep 0.1; done
receiver_url="http://127.0.0.1:$(cat "$port_file")"
count() { curl -sf "$receiver_url/count"; }
users_file="$(mktemp --suffix .jsonl)"
cleanup() { stop_bench_server; kill "$receiver" 2>/dev/null || true; rm -f "$port_file" "$users_file"; }
# start_bench_server sets its own EXIT trap: ours (which also stops the receiver) after it.
start() { start_bench_server "$@"; trap cleanup EXIT; }

# An administrator, their token, and (with $1 = yes) a webhook for every event.
admin_and_webhook() {
  printf '%s' "$password" | ./target/release/latchkey users create admin@example.com \
    --password-stdin --role admin --data-dir "$data" >/dev/null
  local token
  token="$(curl -sf "$url/v1/login" -H 'content-type: application/json' \
    -d "{\"email\":\"admin@example.com\",\"password\":\"$password\"}" | json_field access_token)"
  if [ "$1" = yes ]; then
    curl -sf "$url/v1/admin/webhooks" -H "authorization: Bearer $token" -H 'content-type: application/json' \
      -d "{\"url\":\"$receiver_url/hook\",\"events\":[\"*\"]}" >/dev/null
  fi
}

echo "== $(git rev-parse --short HEAD); $(nproc) cores"
hash='$2b$04$VeCDN8P5r/BLiEOn5B5sKeg24mCfVtrHnZZKoc8Zfq2tOkcfBm9Aa'
python3 - "$USERS" "$hash" >"$users_file" <<'PY'
import json, sys
n, h = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    print(json.dumps({"email": f"user{i:06}@example.com", "email_verified": True, "password_hash": h}))
PY
trap cleanup EXIT
if part deliveries; then
start
admin_and_webhook yes
sleep 1
base="$(count)"
t0="$(date +%s.%N)"
./target/release/latchkey users import "$users_file" --data-dir "$data" >/dev/null
t1="$(date +%s.%N)"
while [ "$(( $(count) - base ))" -lt "$USERS" ]; do sleep 0.05; done
t2="$(date +%s.%N)"
python3 -c "print(f'webhook: {$USERS} events imported in {$t1-$t0:.1f} s; all delivered {$t2-$t0:.1f} s after the import began = {$USERS/($t2-$t0):,.0f} deliveries/s')"
stop_bench_server
fi

part login && for round in $(seq 1 "$ROUNDS"); do
  for hook in no yes; do
    start
    sign_up_bench_account
    admin_and_webhook "$hook"
    wrk -t2 -c16 -d2s -s bench/lua/login.lua "$url/v1/login" >/dev/null   # warm-up
    rate="$(wrk -t2 -c16 -d"${WINDOW}s" -s bench/lua/login.lua "$url/v1/login" | sed -n 's/^Requests\/sec: *\([0-9.]*\)$/\1/p')"
    echo "round $round, webhook for every event: $hook: POST /v1/login $rate/s"
    stop_bench_server
  done
done

part streams || exit 0
start LATCHKEY_EVENTS__STREAM_MAX_PER_USER="$STREAMS" LATCHKEY_HTTP__MAX_CONNECTIONS=$((STREAMS + 100)) LATCHKEY_HTTP__MAX_CONNECTIONS_PER_IP=$((STREAMS + 100))
sign_up_bench_account
token="$(curl -sf "$url/v1/login" -H 'content-type: application/json' \
  -d "{\"email\":\"bench@example.com\",\"password\":\"$password\"}" | json_field access_token)"
node bench/events_clients.mjs streams "$url" "$token" "$STREAMS" "$pid"
