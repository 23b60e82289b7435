// Runs docs/examples/spa/latchkey-session.mjs as a browser would on another
// origin: a cookie jar per "browser", the page's Origin on every request, a
// reload (the page forgets its CSRF token) and an expired access cookie.
// Usage: node spa_as_browser.mjs BASE_URL APP_ORIGIN EMAIL PASSWORD
import { latchkeySession } from "../spa/latchkey-session.mjs";

const [baseUrl, appOrigin, email, password] = process.argv.slice(2);

function browser() {
  const jar = new Map();
  const fetchLikeABrowser = async (url, init) => {
    const headers = new Headers(init.headers);
    headers.set("Origin", appOrigin);
    if (init.credentials === "include" && jar.size) {
      headers.set("Cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
    }
    const response = await fetch(url, { ...init, headers });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(";");
      const [name, value] = pair.split("=");
      const gone = attributes.some((a) => a.trim().toLowerCase() === "max-age=0");
      if (gone) jar.delete(name.trim());
      else jar.set(name.trim(), value.trim());
    }
    // CORS: the page may read the answer only if latchkey allowed its origin.
    if (response.headers.get("access-control-allow-origin") !== appOrigin) {
      throw new Error(`CORS refused ${url}`);
    }
    return response;
  };
  return { jar, fetch: fetchLikeABrowser };
}

function check(condition, message) {
  if (!condition) {
    console.error(`FAILED: ${message}`);
    process.exit(1);
  }
}

const tab = browser();
let app = latchkeySession(baseUrl, tab.fetch);
const user = await app.signIn(email, password);
check(user.email === email, "signed in as the user");
check(tab.jar.has("__Host-lk_refresh"), "the refresh token is an HttpOnly cookie, not in the page");
await app.api("/v1/me", { method: "PATCH", body: { name: "From the SPA" } });

// Reload: a new page, same cookies, no CSRF token in memory.
app = latchkeySession(baseUrl, tab.fetch);
check(await app.recoverCsrfToken(), "the CSRF token comes back after a reload");
const me = await app.api("/v1/me", { method: "PATCH", body: { name: "After reload" } });
check(me.name === "After reload", "an unsafe call works with the recovered token");

// The access cookie expired (dropped here): the helper refreshes once and retries.
tab.jar.delete("__Host-lk_session");
const again = await app.api("/v1/me");
check(again.email === email, "refreshed on 401");

await app.signOut();
app = latchkeySession(baseUrl, tab.fetch);
check(!(await app.recoverCsrfToken()), "signed out: nothing to recover");
console.log("single-page app flow: ok");
