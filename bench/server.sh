# Shared by the bench scripts (source it; not run on its own): start the release
# server on a fresh data directory and loopback port, sign up the bench account,
# stop it and remove everything on exit.
#
#   start_bench_server [NAME=VALUE ...]   # extra settings, e.g. LATCHKEY_SESSIONS__MAX_PER_USER=5
#   sign_up_bench_account                 # bench@example.com / "correct horse battery staple"
#
# Always set: logs at error, no email verification (so the script can sign up),
# rate limits off (the scripts measure the work per request, not the quotas;
# bench/ratelimit.sh measures the limiter itself), a lockout threshold no
# burst reaches (16 connections signing in to one account would otherwise meet
# the lockout's fast 429 for attempts in flight; the counter is still written
# on every attempt). Sets $url, $pid, $data, $out.

start_bench_server() {
  data="$(mktemp -d)"; out="$(mktemp)"
  env LATCHKEY_LOG__LEVEL=error LATCHKEY_AUTH__REQUIRE_EMAIL_VERIFICATION=false \
    LATCHKEY_RATE_LIMIT__ENABLED=false LATCHKEY_LOCKOUT__THRESHOLD=4000000000 "$@" \
    ./target/release/latchkey serve --listen 127.0.0.1:0 --data-dir "$data" >"$out" 2>&1 &
  pid=$!
  trap stop_bench_server EXIT
  for _ in $(seq 1 100); do grep -q "listening on" "$out" && break; sleep 0.1; done
  url="$(sed -n 's/^latchkey listening on //p' "$out")"
  case "$url" in http://127.0.0.1:*) ;; *) echo "server did not start: $(cat "$out")" >&2; exit 1 ;; esac
}

stop_bench_server() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data" "$out"
}

sign_up_bench_account() {
  curl -sf "$url/v1/signup" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"correct horse battery staple"}' >/dev/null
}
