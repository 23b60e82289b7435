// latchkey's pages for mailed links: read the token from the link, send it to
// the API with what the page asks for, say what happened. Text only (never
// HTML from the URL or an answer), relative URLs (works under a path prefix).
"use strict";

(function () {
  var page = document.body.getAttribute("data-page");
  var form = document.getElementById("lk-form");
  var submit = document.getElementById("lk-submit");
  var status = document.getElementById("lk-status");
  var token = new URLSearchParams(window.location.search).get("token") || "";

  // Keep the one-time token out of the history and of anything copied from
  // the address bar from now on.
  if (window.history && window.history.replaceState) {
    window.history.replaceState(null, "", window.location.pathname);
  }

  function say(text, kind) {
    status.textContent = text;
    status.className = kind || "";
  }

  function fieldErrors(name, messages) {
    var input = document.getElementById(name === "new_password" ? "lk-password" : "lk-confirm");
    var list = document.getElementById(input.id + "-errors");
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    messages.forEach(function (message) {
      var item = document.createElement("li");
      item.textContent = message;
      list.appendChild(item);
    });
    input.setAttribute("aria-invalid", messages.length ? "true" : "false");
    return input;
  }

  var INVALID_LINK =
    "This link is invalid, already used or expired. Ask for a new one and use the newest mail.";

  if (!token) {
    say("This link is incomplete: open the whole link from the mail.", "failed");
    submit.disabled = true;
    return;
  }

  function send(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store"
    }).then(function (response) {
      if (response.ok) {
        return { ok: true, status: response.status, problem: null };
      }
      return response.json().then(
        function (problem) {
          return { ok: false, status: response.status, problem: problem };
        },
        function () {
          return { ok: false, status: response.status, problem: {} };
        }
      );
    });
  }

  function failed(result) {
    var problem = result.problem || {};
    if (problem.code === "invalid_token") {
      say(INVALID_LINK, "failed");
    } else if (problem.code === "rate_limited") {
      say("Too many attempts: wait " + (problem.retry_after || 60) + " seconds and try again.", "failed");
    } else {
      say(problem.detail || "Something went wrong (" + result.status + "). Try again later.", "failed");
    }
  }

  function verifyEmail() {
    return send("v1/email/verify", { token: token }).then(function (result) {
      if (result.ok) {
        say("Your email address is verified. You can close this page and sign in.", "done");
        return true;
      }
      failed(result);
      return false;
    });
  }

  function resetPassword() {
    var password = document.getElementById("lk-password").value;
    var confirm = document.getElementById("lk-confirm").value;
    fieldErrors("new_password", []);
    fieldErrors("confirm", []);
    if (!password) {
      fieldErrors("new_password", ["Enter a new password."]).focus();
      say("The form has errors.", "failed");
      return Promise.resolve(false);
    }
    if (password !== confirm) {
      fieldErrors("confirm", ["The two passwords differ."]).focus();
      say("The form has errors.", "failed");
      return Promise.resolve(false);
    }
    return send("v1/password/reset", { token: token, new_password: password }).then(function (result) {
      if (result.ok) {
        form.reset();
        say("Your password is changed and every session is signed out. Sign in with the new password.", "done");
        return true;
      }
      var errors = (result.problem && result.problem.errors) || [];
      var mine = errors.filter(function (e) { return e.field === "new_password"; });
      if (mine.length) {
        fieldErrors("new_password", mine.map(function (e) { return e.message; })).focus();
        say("The new password was refused; the link still works.", "failed");
        return false;
      }
      failed(result);
      return false;
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit.disabled = true;
    say("Sending…");
    var action = page === "reset-password" ? resetPassword : verifyEmail;
    action().then(
      function (done) {
        submit.disabled = done;
      },
      function () {
        say("The server could not be reached. Check your connection and try again.", "failed");
        submit.disabled = false;
      }
    );
  });
})();
