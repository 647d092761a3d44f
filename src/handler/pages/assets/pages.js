// The account service's pages: each reads the token of its link (and then
// removes it from the address bar and the history), and calls the JSON API
// of this same origin. No framework, nothing from a third party.
"use strict";

(function () {
  const api = document.querySelector('meta[name="api-base"]').content;
  const page = document.body.dataset.page;
  const $ = (id) => document.getElementById(id);

  // The token of the link, once; then the address bar no longer shows it.
  function takeToken() {
    const params = new URLSearchParams(window.location.search);
    const token = params.get("token");
    if (window.location.search) {
      window.history.replaceState(null, "", window.location.pathname);
    }
    return token && token.trim() ? token.trim() : null;
  }

  // POSTs `body` as JSON; the status and the parsed body (or null).
  async function post(path, body) {
    let response;
    try {
      response = await fetch(api + path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (e) {
      return { status: 0, body: null, retryAfter: null };
    }
    let parsed = null;
    try {
      parsed = await response.json();
    } catch (e) {
      parsed = null;
    }
    return { status: response.status, body: parsed, retryAfter: response.headers.get("Retry-After") };
  }

  // What to tell a person for an answer no field explains.
  function general(answer) {
    if (answer.status === 0) {
      return "The service cannot be reached. Check your connection and try again.";
    }
    if (answer.status === 429) {
      const wait = answer.retryAfter ? " in " + answer.retryAfter + " seconds" : " later";
      return "Too many attempts. Try again" + wait + ".";
    }
    if (answer.status >= 500) {
      return "The service is unavailable right now. Try again in a moment.";
    }
    const message = answer.body && answer.body.error && answer.body.error.message;
    return message ? "Something is wrong: " + message + "." : "Something went wrong.";
  }

  // The message of the invalid field `name` of a 400, if that is the one.
  function fieldError(answer, name) {
    const args = answer.body && answer.body.error && answer.body.error.invalidArgs;
    if (answer.status !== 400 || !Array.isArray(args)) {
      return null;
    }
    const arg = args.find((a) => a.field === name);
    return arg ? arg.message : null;
  }

  function say(id, text) {
    $(id).textContent = text;
  }

  function busy(button, on) {
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  const USED = "This link was used, expired or replaced by a newer one.";

  function verifyEmail() {
    const token = takeToken();
    const button = $("verify");
    if (!token) {
      $("no-token").hidden = false;
      button.disabled = true;
      $("ask-again").hidden = false;
    }
    // Only a press uses the token: a GET of the page (a mail scanner, a
    // link preview) changes nothing.
    button.addEventListener("click", async () => {
      busy(button, true);
      const answer = await post("/verify-email", { token: token });
      busy(button, false);
      if (answer.status === 204) {
        say("outcome", "Your email address is verified. You can close this page.");
        button.hidden = true;
        $("intro").hidden = true;
      } else if (fieldError(answer, "token")) {
        say("outcome", USED);
        button.hidden = true;
        $("intro").hidden = true;
        $("ask-again").hidden = false;
      } else {
        say("outcome", general(answer));
      }
    });
    $("ask-again").addEventListener("submit", async (event) => {
      event.preventDefault();
      const send = $("resend");
      say("resend-email-error", "");
      busy(send, true);
      const answer = await post("/verify-email/resend", { email: $("resend-email").value });
      busy(send, false);
      const invalid = fieldError(answer, "email");
      if (answer.status === 202) {
        say("resend-outcome", "If an unverified account has this address, a new link is on its way.");
      } else if (invalid) {
        say("resend-email-error", invalid);
        $("resend-email").focus();
      } else {
        say("resend-outcome", general(answer));
      }
    });
  }

  function resetPassword() {
    const token = takeToken();
    const form = $("reset");
    if (!token) {
      $("no-token").hidden = false;
      form.hidden = true;
      return;
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      say("password-error", "");
      say("confirm-error", "");
      say("outcome", "");
      const password = $("password").value;
      if (password !== $("confirm").value) {
        say("confirm-error", "The two passwords differ.");
        $("confirm").focus();
        return;
      }
      const submit = $("submit");
      busy(submit, true);
      const answer = await post("/password-reset/confirm", { token: token, newPassword: password });
      busy(submit, false);
      const invalidPassword = fieldError(answer, "newPassword");
      if (answer.status === 204) {
        form.hidden = true;
        say(
          "outcome",
          "Your password has been changed. Every device was signed out: sign in with the new password.",
        );
      } else if (invalidPassword) {
        say("password-error", invalidPassword);
        $("password").focus();
      } else if (fieldError(answer, "token")) {
        form.hidden = true;
        say("outcome", USED);
        $("ask-again").hidden = false;
      } else {
        say("outcome", general(answer));
      }
    });
  }

  function forgotPassword() {
    const form = $("forgot");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      say("email-error", "");
      say("outcome", "");
      const submit = $("submit");
      busy(submit, true);
      const answer = await post("/password-reset", { email: $("email").value });
      busy(submit, false);
      const invalid = fieldError(answer, "email");
      if (answer.status === 202) {
        say(
          "outcome",
          "If an account has this email, a link to set a new password has been sent to it.",
        );
      } else if (invalid) {
        say("email-error", invalid);
        $("email").focus();
      } else {
        say("outcome", general(answer));
      }
    });
  }

  const pages = {
    "verify-email": verifyEmail,
    "reset-password": resetPassword,
    "forgot-password": forgotPassword,
  };
  if (pages[page]) {
    pages[page]();
  }
})();
