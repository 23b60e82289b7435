// A browser app's side of cookie mode: sign in, call the API with the CSRF
// token, refresh once on 401, recover the CSRF token after a reload, sign out.
// `baseUrl` is latchkey's public_url: always absolute when the app runs on
// another origin.
export function latchkeySession(baseUrl, fetchImpl = globalThis.fetch) {
  let csrfToken = null;

  async function call(path, { method = "GET", body } = {}) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    // Unsafe methods need the session's CSRF token (GETs do not).
    if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
    return fetchImpl(`${baseUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "include", // send latchkey's cookies, cross-origin too
    });
  }

  async function json(response) {
    const body = await response.json();
    if (!response.ok) throw Object.assign(new Error(body.detail), { problem: body });
    return body;
  }

  return {
    async signIn(email, password) {
      const tokens = await json(await call("/v1/login", {
        method: "POST",
        body: { email, password, mode: "cookie" },
      }));
      csrfToken = tokens.csrf_token; // no refresh token in the body: it is a cookie
      return tokens.user;
    },

    // After a reload the page has lost csrfToken; a cross-origin app cannot read
    // latchkey's CSRF cookie, so it asks (the session or refresh cookie decides).
    async recoverCsrfToken() {
      const response = await call("/v1/csrf");
      if (response.status === 401) return false; // signed out: show the sign-in form
      csrfToken = (await json(response)).csrf_token;
      return true;
    },

    // Any API call: on 401 (access cookie expired), refresh once and retry.
    async api(path, options) {
      let response = await call(path, options);
      if (response.status === 401) {
        const refreshed = await call("/v1/token/refresh", { method: "POST" });
        if (!refreshed.ok) throw new Error("signed out");
        csrfToken = (await refreshed.json()).csrf_token;
        response = await call(path, options);
      }
      return response.status === 204 ? null : json(response);
    },

    async signOut() {
      await call("/v1/logout", { method: "POST" });
      csrfToken = null;
    },
  };
}
