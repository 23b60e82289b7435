"""Ask latchkey whether a token is active right now (RFC 7662 introspection).

Usage: python introspect.py BASE_URL CLIENT_ID CLIENT_SECRET TOKEN
"""
import base64
import json
import sys
import urllib.parse
import urllib.request

BASE_URL, CLIENT_ID, CLIENT_SECRET, TOKEN = sys.argv[1:5]


def introspect(token: str) -> dict:
    credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    request = urllib.request.Request(
        f"{BASE_URL}/v1/introspect",
        data=urllib.parse.urlencode({"token": token}).encode(),  # the RFC's form encoding
        headers={
            "Authorization": f"Basic {credentials}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


answer = introspect(TOKEN)
# A refresh token introspects as active too: accept access tokens only.
if not answer["active"] or answer.get("token_type") != "access_token":
    sys.exit(f"not an active access token: {answer}")
print(f"active: sub={answer['sub']} sid={answer['sid']} exp={answer['exp']}")
