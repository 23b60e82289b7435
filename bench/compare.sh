#!/usr/bin/env bash
# Two builds side by side, in one run: BEFORE and AFTER are latchkey binaries
# (e.g. a release build of an earlier commit in another worktree, and this
# tree's). Each round starts each binary on a fresh data directory (rate limits
# off, as bench/server.sh), signs up the bench account and measures, in turn,
# POST /v1/login at 16 connections, GET /v1/me with a token at 16
# connections, and POST /v1/token/refresh on 4 chains (4 connections, each
# presenting the token it received last, as bench/auth.sh), WINDOW seconds
# each; rounds alternate which binary goes first.
# Prints every window and the mean of each measure per binary.
#
#   BEFORE=../old/target/release/latchkey AFTER=target/release/latchkey ROUNDS=4 bench/compare.sh
#   BEFORE=target/release/latchkey AFTER_ENV=LATCHKEY_LOG__LEVEL=info bench/compare.sh
#
# BEFORE_ENV / AFTER_ENV add settings (NAME=VALUE words) to one side only.
# Both sides run with a lockout threshold no burst reaches: 16 connections
# signing in to one account would otherwise meet the lockout's refusal of
# attempts in flight (a fast 429 that is not a sign-in). A window with any
# non-2xx answer is flagged "(N non-2xx)".
#
# Bounded: 2 binaries x 3 measures x ROUNDS x WINDOW seconds (default 4 x 8 s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-4}"
WINDOW="${WINDOW:-8}"
: "${BEFORE:?set BEFORE to the earlier latchkey binary}"
AFTER="${AFTER:-target/release/latchkey}"
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }

# One sign-in of the bench account (extra curl options after the field); prints
# `field` of its answer. Any other answer than 200 is reported on stderr with
# the server's last log lines, so a failing window can be told apart.
sign_in() {
  local field="$1" answer status; shift
  answer="$(curl -s "$@" -w '\n%{http_code}' "$url/v1/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"correct horse battery staple"}')"
  status="${answer##*$'\n'}"
  if [ "$status" != 200 ]; then
    echo "  ($label: a sign-in answered $status: ${answer%$'\n'*}; server log: $(tail -5 "$out"))" >&2
    return 0
  fi
  python3 -c "import json,sys; print(json.loads(sys.argv[1])['$field'])" "${answer%$'\n'*}"
}

measure() { # binary label [NAME=VALUE ...] -> prints "label login_rps me_rps refresh_rps"
  local bin="$1" label="$2" data out pid url token login me refresh tokens
  shift 2
  data="$(mktemp -d)"; out="$(mktemp)"
  env LATCHKEY_LOG__LEVEL=warn LATCHKEY_AUTH__REQUIRE_EMAIL_VERIFICATION=false \
    LATCHKEY_RATE_LIMIT__ENABLED=false LATCHKEY_LOCKOUT__THRESHOLD=4000000000 "$@" \
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$out" && break; sleep 0.1; done
  url="$(sed -n 's/^latchkey listening on //p' "$out")"
  curl -sf "$url/v1/signup" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"correct horse battery staple"}' >/dev/null
  login="$(wrk -t2 -c16 -d"${WINDOW}s" -s bench/lua/login.lua "$url/v1/login")"
  # After the login window: those sign-ins evicted every older session of the
  # account (sessions.max_per_user), and a token of an evicted one is a 401.
  token="$(sign_in access_token)"
  me="$(ACCESS_TOKEN="$token" wrk -t2 -c16 -d"${WINDOW}s" -s bench/lua/me.lua "$url/v1/me")"
  # Four refresh chains from four sign-ins (within sessions.max_per_user),
  # signed in with no User-Agent, as wrk sends none: the same device refreshes
  # (with curl's, every refresh was a device_changed event).
  tokens=""
  for _ in 1 2 3 4; do
    tokens="$tokens $(sign_in refresh_token -A '')"
  done
  refresh="$(REFRESH_TOKENS="$tokens" wrk -t4 -c4 -d"${WINDOW}s" -s bench/lua/refresh.lua "$url/v1/token/refresh")"
  for run in "login:$login" "me:$me" "refresh:$refresh"; do
    bad="$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)$/\1/p' <<<"${run#*:}")"
    [ -z "$bad" ] || echo "  ($label ${run%%:*}: $bad non-2xx answers; that window's rate is not comparable)" >&2
  done
  login="$(sed -n 's/^Requests\/sec: *\([0-9.]*\)$/\1/p' <<<"$login")"
  me="$(sed -n 's/^Requests\/sec: *\([0-9.]*\)$/\1/p' <<<"$me")"
  refresh="$(sed -n 's/^Requests\/sec: *\([0-9.]*\)$/\1/p' <<<"$refresh")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data" "$out"
  echo "$label $login $me $refresh"
}

results="$(mktemp)"
echo "== $ROUNDS rounds of ${WINDOW} s POST /v1/login + GET /v1/me (16 connections each) + POST /v1/token/refresh (4 chains); $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
  for which in $order; do
    if [ "$which" = before ]; then bin="$BEFORE"; extra="${BEFORE_ENV:-}"; else bin="$AFTER"; extra="${AFTER_ENV:-}"; fi
    # shellcheck disable=SC2086 # the extra settings are a list of words
    line="$(measure "$bin" "$which" $extra)"
    echo "round $round: $line" | awk '{printf "round %s %-6s POST /v1/login %8.1f/s  GET /v1/me %9.1f/s  POST /v1/token/refresh %8.1f/s\n", $2, $3, $4, $5, $6}'
    echo "$line" >>"$results"
  done
done
python3 - "$results" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
for which in ("before", "after"):
    mine = [r for r in rows if r[0] == which]
    login = sum(float(r[1]) for r in mine) / len(mine)
    me = sum(float(r[2]) for r in mine) / len(mine)
    refresh = sum(float(r[3]) for r in mine) / len(mine)
    print(f"mean {which:6}: POST /v1/login {login:8.1f}/s  GET /v1/me {me:9.1f}/s  POST /v1/token/refresh {refresh:8.1f}/s")
PY
rm -f "$results"
