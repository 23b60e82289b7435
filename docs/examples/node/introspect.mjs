// Ask latchkey whether a token is active right now (RFC 7662 introspection).
// Usage: node introspect.mjs BASE_URL CLIENT_ID CLIENT_SECRET TOKEN
const [baseUrl, clientId, clientSecret, token] = process.argv.slice(2);

async function introspect(candidate) {
  const response = await fetch(`${baseUrl}/v1/introspect`, {
    method: "POST",
    headers: {
      Authorization: "Basic " + Buffer.from(`${clientId}:${clientSecret}`).toString("base64"),
      "Content-Type": "application/json", // the form encoding works too
    },
    body: JSON.stringify({ token: candidate }),
  });
  if (!response.ok) throw new Error(`introspection failed: ${response.status}`);
  return response.json();
}

const answer = await introspect(token);
// A refresh token introspects as active too: accept access tokens only.
if (!answer.active || answer.token_type !== "access_token") {
  console.error("not an active access token", answer);
  process.exit(1);
}
console.log(`active: sub=${answer.sub} sid=${answer.sid} exp=${answer.exp}`);
