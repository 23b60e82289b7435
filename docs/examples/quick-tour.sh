#!/usr/bin/env bash
# latchkey's whole token flow with curl, against `latchkey serve` in dev.
# Needs curl and jq. URL: where latchkey listens; MAIL_DIR: its dev mail files.
set -euo pipefail
URL=${URL:-http://127.0.0.1:8080}
MAIL_DIR=${MAIL_DIR:-latchkey-data/mail}
EMAIL=${EMAIL:-ada@example.com}
PASSWORD=${PASSWORD:-correct horse battery staple}
json=(-H 'Content-Type: application/json')

# 1. Sign up: 202, and a verification mail is queued.
curl -sf "${json[@]}" "$URL/v1/signup" -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}"; echo

# 2. Read the link's token from the dev mail file (it arrives within a second).
until TOKEN=$(grep -rhos 'lk_ev_[A-Za-z0-9_-]\{43\}' "$MAIL_DIR" | tail -n1) && [ -n "$TOKEN" ]; do sleep 0.2; done

# 3. Verify the address: 200 and the user.
curl -sf "${json[@]}" "$URL/v1/email/verify" -d "{\"token\":\"$TOKEN\"}" | jq -c '{email, email_verified}'

# 4. Sign in: an access token (JWT, 15 min) and a refresh token (single use).
LOGIN=$(curl -sf "${json[@]}" "$URL/v1/login" -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}")
ACCESS=$(jq -r .access_token <<<"$LOGIN"); REFRESH=$(jq -r .refresh_token <<<"$LOGIN")

# 5. Call an authenticated endpoint with the access token.
curl -sf "$URL/v1/me" -H "Authorization: Bearer $ACCESS" | jq -c '{id, email}'

# 6. Refresh: a new pair; the old refresh token stops working.
PAIR=$(curl -sf "${json[@]}" "$URL/v1/token/refresh" -d "{\"refresh_token\":\"$REFRESH\"}")
ACCESS=$(jq -r .access_token <<<"$PAIR")

# 7. The keys resource servers verify access tokens with.
curl -sf "$URL/.well-known/jwks.json" | jq -c '[.keys[] | {kid, alg, crv}]'

# 8. Replaying the spent refresh token is reuse: 401, and the session is revoked.
curl -s "${json[@]}" "$URL/v1/token/refresh" -d "{\"refresh_token\":\"$REFRESH\"}" | jq -c '{status, code}'

# 9. So the access token of that session no longer works either: 401.
curl -s "$URL/v1/me" -H "Authorization: Bearer $ACCESS" -o /dev/null -w '%{http_code}\n'

# 10. Sign in again and sign out: 204; the token is refused from then on.
ACCESS=$(curl -sf "${json[@]}" "$URL/v1/login" -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" | jq -r .access_token)
curl -sf -X POST "$URL/v1/logout" -H "Authorization: Bearer $ACCESS" -o /dev/null -w '%{http_code}\n'
