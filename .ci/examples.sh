#!/usr/bin/env bash
# Runs the guides' examples (docs/quick-tour.md, docs/resource-servers.md,
# docs/single-page-apps.md) against a real server: the binary given (default
# target/debug/latchkey, built by `cargo test --workspace`) on a free port with
# a temporary data directory. Python and Node dependencies come only from the
# committed docs/examples/python/requirements.txt and node/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/debug/latchkey}")
EXAMPLES=$PWD/docs/examples
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$port"
APP_ORIGIN="http://app.localhost:5173"
CLIENT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
CLIENT_SHA=$(printf %s "$CLIENT_SECRET" | sha256sum | cut -d' ' -f1)
cat > "$work/latchkey.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/data"

[password]
breach_check = "off"   # no outbound calls in CI

[cors]
allowed_origins = ["$APP_ORIGIN"]

[[introspection.clients]]
id = "guide-api"
secret_sha256 = "$CLIENT_SHA"
TOML

"$BIN" serve --config "$work/latchkey.toml" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -sf "$URL/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "$URL/healthz" >/dev/null || { cat "$work/server.log"; exit 1; }

echo "== quick tour (docs/quick-tour.md)"
URL=$URL MAIL_DIR="$work/data/mail" bash "$EXAMPLES/quick-tour.sh"

login() {
  curl -sf -H 'Content-Type: application/json' "$URL/v1/login" \
    -d '{"email":"ada@example.com","password":"correct horse battery staple"}' | jq -r .access_token
}
ACCESS=$(login)

echo "== Python (docs/resource-servers.md)"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check -r "$EXAMPLES/python/requirements.txt"
"$work/venv/bin/python" "$EXAMPLES/python/verify_token.py" "$URL" latchkey "$ACCESS"
"$work/venv/bin/python" "$EXAMPLES/python/introspect.py" "$URL" guide-api "$CLIENT_SECRET" "$ACCESS"

echo "== Node (docs/resource-servers.md, docs/single-page-apps.md)"
(cd "$EXAMPLES/node" && npm ci --silent --no-audit --no-fund)
node "$EXAMPLES/node/verify_token.mjs" "$URL" latchkey "$ACCESS"
node "$EXAMPLES/node/introspect.mjs" "$URL" guide-api "$CLIENT_SECRET" "$ACCESS"
node "$EXAMPLES/node/spa_as_browser.mjs" "$URL" "$APP_ORIGIN" ada@example.com "correct horse battery staple"

echo "== latchkey's page script parses"
node --check crates/latchkey-server/src/routes/pages/latchkey-pages.js

echo "examples: 7 passed, 0 failed"
