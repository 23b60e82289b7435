// Verify a latchkey access token locally with the JWKS (jose).
// Usage: node verify_token.mjs ISSUER AUDIENCE ACCESS_TOKEN
import { createRemoteJWKSet, jwtVerify, errors } from "jose";

const [issuer, audience, token] = process.argv.slice(2);

// One key set per process: cached, and fetched again when a token names an
// unknown kid (after a key rotation), at most every 30 s.
const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`), {
  cooldownDuration: 30_000,
});

async function verify(jwt) {
  const { payload } = await jwtVerify(jwt, jwks, {
    algorithms: ["EdDSA"], // pin what latchkey signs with (tokens.algorithm)
    typ: "at+jwt", // RFC 9068: only access tokens
    issuer, // latchkey's public_url (or tokens.issuer)
    audience, // tokens.audience
    clockTolerance: 60, // seconds of clock difference tolerated
    requiredClaims: ["exp", "iat", "nbf", "sub", "sid", "jti"],
  });
  return payload;
}

const claims = await verify(token);
console.log(`valid: sub=${claims.sub} sid=${claims.sid} roles=${claims.roles}`);

// A forged token must fail: change one character of the signature.
const at = token.length - 10;
const forged = token.slice(0, at) + (token[at] === "A" ? "B" : "A") + token.slice(at + 1);
try {
  await verify(forged);
  console.error("a forged token was accepted");
  process.exit(1);
} catch (e) {
  if (!(e instanceof errors.JOSEError)) throw e;
  console.log("forged token refused");
}
