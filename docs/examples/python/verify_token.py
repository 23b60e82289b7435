"""Verify a latchkey access token locally with the JWKS (PyJWT).

Usage: python verify_token.py ISSUER AUDIENCE ACCESS_TOKEN
"""
import sys

import jwt  # PyJWT, with cryptography for EdDSA

ISSUER, AUDIENCE, TOKEN = sys.argv[1], sys.argv[2], sys.argv[3]

# One client per process: it caches the keys and fetches the set again when a
# token names a kid it has not seen (after a key rotation).
jwks = jwt.PyJWKClient(f"{ISSUER}/.well-known/jwks.json", cache_keys=True)


def verify(token: str) -> dict:
    header = jwt.get_unverified_header(token)
    # RFC 9068: access tokens are typed; a refresh token or another JWT is not one.
    if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
        raise jwt.InvalidTokenError("not an access token")
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key=key,
        algorithms=["EdDSA"],  # pin what latchkey signs with (tokens.algorithm)
        issuer=ISSUER,  # latchkey's public_url (or tokens.issuer)
        audience=AUDIENCE,  # tokens.audience
        leeway=60,  # seconds of clock difference tolerated
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "sid", "jti"]},
    )


claims = verify(TOKEN)
print(f"valid: sub={claims['sub']} sid={claims['sid']} roles={claims['roles']}")

# A forged token must fail: change one character of the signature.
forged = TOKEN[:-10] + ("A" if TOKEN[-10] != "A" else "B") + TOKEN[-9:]
try:
    verify(forged)
    sys.exit("a forged token was accepted")
except jwt.InvalidTokenError:
    print("forged token refused")
