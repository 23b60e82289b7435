#!/usr/bin/env bash
# Instructions per request under callgrind: counts that do not depend on host
# load, for comparing two builds a few per cent apart (wall-clock rates on a
# 2-core host cannot). Starts BIN (default target/release/latchkey) under
# valgrind on a fresh data directory with compare.sh's settings, signs up, and
# measures three phases on one keep-alive connection, each between
# `callgrind_control --zero` and `--dump`: REFRESHES chained refreshes (each
# presents the token the last one returned), MES `GET /v1/me`, LOGINS logins.
# Prints "phase requests instructions per_request" per phase; includes the
# background loops (~0.3 M instructions/s idle, under 0.5 % of any phase).
#
#   bench/callgrind.sh                       # this tree's release build
#   BIN=../old/target/release/latchkey bench/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-target/release/latchkey}"
REFRESHES="${REFRESHES:-2000}" MES="${MES:-20000}" LOGINS="${LOGINS:-100}"
command -v valgrind >/dev/null || { echo "install valgrind" >&2; exit 1; }
work="$(mktemp -d)"
env LATCHKEY_LOG__LEVEL=error LATCHKEY_AUTH__REQUIRE_EMAIL_VERIFICATION=false \
  LATCHKEY_RATE_LIMIT__ENABLED=false LATCHKEY_LOCKOUT__THRESHOLD=4000000000 \
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" \
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do grep -q "listening on" "$work/out" && break; sleep 0.2; done
url="$(sed -n 's/^latchkey listening on //p' "$work/out")"
[ -n "$url" ] || { cat "$work/out" >&2; exit 1; }
PID=$pid URL="$url" WORK="$work" REFRESHES="$REFRESHES" MES="$MES" LOGINS="$LOGINS" python3 - <<'PY'
import http.client, json, os, subprocess, time, urllib.parse, glob
u = urllib.parse.urlparse(os.environ["URL"]); pid = os.environ["PID"]; work = os.environ["WORK"]
c = http.client.HTTPConnection(u.hostname, u.port)
def call(method, path, body=None, token=None):
    h = {"content-type": "application/json"}
    if token: h["authorization"] = "Bearer " + token
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse(); data = r.read()
    assert 200 <= r.status < 300, (path, r.status, data[:200])
    return json.loads(data) if data else None
cred = {"email": "bench@example.com", "password": "correct horse battery staple 42"}
call("POST", "/v1/signup", cred)
def phase(name, n, setup, run):
    state = setup()
    subprocess.run(["callgrind_control", "--zero", pid], check=True, capture_output=True)
    run(state, n); time.sleep(1)
    subprocess.run(["callgrind_control", "--dump=" + name, pid], check=True, capture_output=True)
    time.sleep(1)
    newest = max(glob.glob(work + "/cg.*"), key=os.path.getmtime)
    total = next(int(l.split()[1]) for l in open(newest) if l.startswith(("summary:", "totals:")))
    print(f"{name} {n} {total} {total // n}", flush=True)
def refreshes(t, n):
    for _ in range(n): t = call("POST", "/v1/token/refresh", {"refresh_token": t})["refresh_token"]
def mes(a, n):
    for _ in range(n): call("GET", "/v1/me", token=a)
def logins(_, n):
    for _ in range(n): call("POST", "/v1/login", cred)
login = lambda field: (lambda: call("POST", "/v1/login", cred)[field])
phase("refresh", int(os.environ["REFRESHES"]), login("refresh_token"), refreshes)
phase("me", int(os.environ["MES"]), login("access_token"), mes)
phase("login", int(os.environ["LOGINS"]), lambda: None, logins)
PY
