#!/usr/bin/env bash
# Unknown email vs wrong password at POST /v1/login, measured precisely (the
# statistical test in crates/latchkey-testkit/tests/it/timing.rs only checks a
# loose bound). bench/README.md has the figures and how to read them.
#
# Starts the release server on a fresh data directory (SQLite, verification off so
# the script can sign up, rate limits off, lockout bookkeeping on but with a
# threshold that is never reached), creates one account, then
# bench/login_timing.py sends SAMPLES logins per class, one at a time, in
# randomised blocks: wrong password, unknown email, correct password (context).
# Bounded: 3 x (SAMPLES + 10) sequential logins (~1 min at the default on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLES="${SAMPLES:-400}"
if [ -z "${NO_BUILD:-}" ]; then # NO_BUILD=1: reuse the binaries already in target/release
  cargo build --release --quiet -p latchkey
  cargo build --release --quiet -p latchkey-core --example argon2_rate
fi

. bench/server.sh
# bench/server.sh sets a lockout threshold no run reaches: the per-address
# failure counter is still written on every failure (as in production, for
# both classes) but never reaches the lock.
start_bench_server LATCHKEY_SESSIONS__MAX_PER_USER=100000000
sign_up_bench_account

if [ -z "${NO_BUILD:-}" ]; then
  built="built from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' + uncommitted changes in crates/')"
else
  built="binary from an earlier build (NO_BUILD)"
fi
echo "== $built; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== raw Argon2id (latchkey's hasher, default parameters, one hash per core, 5 s)"
./target/release/examples/argon2_rate 5
echo "== POST /v1/login, $SAMPLES per class, one connection"
python3 bench/login_timing.py "$url" "$SAMPLES"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
