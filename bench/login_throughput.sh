#!/usr/bin/env bash
# Logins/s against the raw Argon2id rate, in interleaved windows (bench/README.md).
# The raw rate of this machine drifts by tens of percent between minutes (turbo,
# other load), so one raw window followed by one login window gives a noisy ratio.
# This script alternates ROUNDS pairs of windows (raw WINDOW seconds, then
# wrk POST /v1/login at 16 connections for WINDOW seconds) on one running server
# and prints each pair's ratio and the ratio of the totals.
# SERVER_ENV adds settings, e.g. SERVER_ENV=LATCHKEY_SESSIONS__MAX_PER_USER=100000000.
# Bounded: 2 x ROUNDS x WINDOW seconds of load (default 2 x 4 x 8 s), loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-4}"
WINDOW="${WINDOW:-8}"
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --quiet -p latchkey
  cargo build --release --quiet -p latchkey-core --example argon2_rate
fi

. bench/server.sh
# shellcheck disable=SC2086 # SERVER_ENV is a list of NAME=VALUE words
start_bench_server ${SERVER_ENV:-}
sign_up_bench_account

echo "== $(git rev-parse --short HEAD); $(nproc) cores; $ROUNDS rounds of ${WINDOW} s raw + ${WINDOW} s login; ${SERVER_ENV:-default settings}"
raw_total=0; login_total=0
for round in $(seq 1 "$ROUNDS"); do
  raw="$(./target/release/examples/argon2_rate "$WINDOW" | sed -n 's/.*= \([0-9.]*\)\/s$/\1/p')"
  login="$(wrk -t2 -c16 -d"${WINDOW}s" -s bench/lua/login.lua "$url/v1/login" \
    | sed -n 's/^Requests\/sec: *\([0-9.]*\)$/\1/p')"
  ratio="$(python3 -c "print(f'{100*$login/$raw:.1f}')")"
  echo "round $round: raw Argon2id $raw/s, POST /v1/login $login/s = $ratio %"
  raw_total="$(python3 -c "print($raw_total + $raw)")"
  login_total="$(python3 -c "print($login_total + $login)")"
done
python3 -c "print(f'all rounds: raw {$raw_total/$ROUNDS:.1f}/s, logins {$login_total/$ROUNDS:.1f}/s = {100*$login_total/$raw_total:.1f} %')"
