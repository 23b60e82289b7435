#!/usr/bin/env bash
# Administration benchmarks (bench/README.md has the figures): `latchkey users
# import` of USERS bcrypt-hashed accounts (users/s; the import stores the given
# hash and never hashes), then `GET /v1/admin/users` with those accounts in the
# store: the first page, a page deep in the list (by its cursor), a name-prefix
# search and an exact-email search, wrk at CONNECTIONS connections, DURATION each.
# SQLite always; PostgreSQL too when BENCH_POSTGRES_URL is set (a throwaway schema).
#
#   bench/admin.sh
#   USERS=100000 DURATION=10s BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/admin.sh
set -euo pipefail
cd "$(dirname "$0")/.."
USERS="${USERS:-100000}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-16}"
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet -p latchkey
. bench/server.sh

# One cost-4 bcrypt hash of the bench password for every line: the import only
# checks a hash's form and cost, so its rate does not depend on the hash.
password="correct horse battery staple"
hash='$2b$04$VeCDN8P5r/BLiEOn5B5sKeg24mCfVtrHnZZKoc8Zfq2tOkcfBm9Aa'
file="$(mktemp --suffix .jsonl)"
python3 - "$USERS" "$hash" >"$file" <<'EOF'
import json, sys
n, h = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    print(json.dumps({"email": f"user{i:06}@example.com", "name": f"User {i:06}",
                      "email_verified": True, "password_hash": h}))
EOF

summary() { grep -E "Requests/sec|^ +(50|99)%|Non-2xx" ; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# $1: label; the rest: settings for the server and the CLI alike.
run() {
  local label="$1"; shift
  start_bench_server "$@"
  trap 'stop_bench_server; rm -f "$file"' EXIT
  echo "== [$label] latchkey users import: $USERS bcrypt-hashed accounts"
  local t0 t1
  t0="$(date +%s.%N)"
  env "$@" ./target/release/latchkey users import "$file" --data-dir "$data"
  t1="$(date +%s.%N)"
  python3 -c "print(f'{$USERS / ($t1 - $t0):,.0f} users/s ({$t1 - $t0:.1f} s)')"
  printf '%s' "$password" | env "$@" ./target/release/latchkey users create admin@example.com \
    --password-stdin --role admin --data-dir "$data" >/dev/null
  ACCESS_TOKEN="$(curl -sf "$url/v1/login" -H 'content-type: application/json' \
    -d "{\"email\":\"admin@example.com\",\"password\":\"$password\"}" | json_field access_token)"
  export ACCESS_TOKEN
  # The cursor of the page that starts at the middle of the list.
  local deep
  deep="$(python3 - "$url" "$USERS" <<'EOF'
import json, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
cursor, seen = None, 0
while seen < n // 2:
    q = "?limit=200" + (f"&cursor={cursor}" if cursor else "")
    req = urllib.request.Request(url + "/v1/admin/users" + q,
                                 headers={"Authorization": "Bearer " + __import__("os").environ["ACCESS_TOKEN"]})
    page = json.load(urllib.request.urlopen(req))
    seen += len(page["items"])
    cursor = page["next_cursor"]
print(cursor)
EOF
)"
  wrk -t2 -c"$CONNECTIONS" -d3s -s bench/lua/me.lua "$url/v1/admin/users?limit=50" >/dev/null   # warm-up
  local query shown
  for query in "" "&cursor=$deep" "&query=User%200499" "&query=user049999@example.com"; do
    shown="$query"
    case "$query" in "&cursor="*) shown="&cursor=(the middle of the list)" ;; esac
    echo "== [$label] GET /v1/admin/users?limit=50$shown, $CONNECTIONS connections"
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/lua/me.lua "$url/v1/admin/users?limit=50$query" | summary
  done
  stop_bench_server
}

run sqlite

if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  schema="lkbench_$$"
  psql -q "$BENCH_POSTGRES_URL" -c "CREATE SCHEMA $schema"
  run postgres "LATCHKEY_DATABASE__URL=${BENCH_POSTGRES_URL}?options=-c%20search_path%3D$schema"
  PGOPTIONS='-c client_min_messages=warning' psql -q "$BENCH_POSTGRES_URL" -c "DROP SCHEMA $schema CASCADE"
fi
