// The account service's pages: sign-in and sign-up, and the pages the mails
// link to (each reads the token of its link, then removes it from the address
// bar and the history). They call the JSON API of this same origin. No
// framework, nothing from a third party. passkeys.js (served after this in
// /assets/pages.js) and account.js use the helpers of `window.accountPages`.
"use strict";

(function () {
  const api = document.querySelector('meta[name="api-base"]').content || "/api/account";
  const page = document.body.dataset.page;
  const $ = (id) => document.getElementById(id);

  // Where "Continue" goes: the page's `?redirect_to=`, which the server put
  // in the meta element only if REDIRECT_URLS allows it (else it is empty).
  const redirectTo = (function () {
    const meta = document.querySelector('meta[name="redirect-to"]');
    const value = meta ? meta.content.trim() : "";
    if (!value) {
      return null;
    }
    try {
      const url = new URL(value);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) {
      return null;
    }
  })();

  // `path` of this site, carrying the accepted `redirect_to` on.
  function withRedirect(path) {
    return redirectTo ? path + "?redirect_to=" + encodeURIComponent(redirectTo) : path;
  }

  // A field's error goes as soon as the person edits the field.
  document.addEventListener("input", (event) => {
    const error = event.target.id ? $(event.target.id + "-error") : null;
    if (error) {
      error.textContent = "";
    }
  });

  // Links to the other pages keep the `redirect_to` of this one.
  for (const link of document.querySelectorAll("a[data-keep-redirect]")) {
    link.href = withRedirect(link.getAttribute("href"));
  }

  // The token of the link, once; then the address bar no longer shows it
  // (the other parameters, `redirect_to`, stay).
  function takeToken() {
    const params = new URLSearchParams(window.location.search);
    const token = params.get("token");
    if (params.has("token")) {
      params.delete("token");
      const rest = params.toString();
      window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
    }
    return token && token.trim() ? token.trim() : null;
  }

  // Calls `method path` of the API: `options.body` as JSON, `options.token`
  // as the bearer token, `options.cookie` to send the session cookie (the
  // `/browser` routes only). The status and the parsed body (or null).
  async function call(method, path, options) {
    const opts = options || {};
    const headers = {};
    const init = {
      method: method,
      headers: headers,
      credentials: opts.cookie ? "same-origin" : "omit",
      cache: "no-store",
    };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    if (opts.token) {
      headers["Authorization"] = "Bearer " + opts.token;
    }
    let response;
    try {
      response = await fetch(api + path, init);
    } catch (e) {
      return { status: 0, body: null, retryAfter: null, authenticate: null };
    }
    let parsed = null;
    try {
      parsed = await response.json();
    } catch (e) {
      parsed = null;
    }
    const header = (name) => response.headers.get(name);
    const retryAfter = header("Retry-After");
    return { status: response.status, body: parsed, retryAfter: retryAfter, authenticate: header("WWW-Authenticate") };
  }

  // POSTs `body` as JSON, without cookies.
  function post(path, body) {
    return call("POST", path, { body: body });
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
    if (errorType(answer) === "INSUFFICIENT_USER_AUTHENTICATION") {
      return "This needs a recent sign-in with your second step: sign out, then sign in again with your code.";
    }
    const message = answer.body && answer.body.error && answer.body.error.message;
    return message ? "Something is wrong: " + message + "." : "Something went wrong.";
  }

  // The `error.type` of an answer, if it has one.
  function errorType(answer) {
    return (answer.body && answer.body.error && answer.body.error.type) || null;
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

  // Shows each field error of `answer` under its input (`fields`: API field
  // name → input id; the error element is `<id>-error`), focusing the first.
  // Whether there was one.
  function showFieldErrors(answer, fields) {
    let first = null;
    for (const [field, id] of Object.entries(fields)) {
      const message = fieldError(answer, field);
      if (message) {
        say(id + "-error", message);
        first = first || id;
      }
    }
    if (first) {
      $(first).focus();
    }
    return first !== null;
  }

  function say(id, text) {
    $(id).textContent = text;
  }

  function busy(button, on) {
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  // A "Continue" link to the accepted `redirect_to`, or null without one.
  function continueLink() {
    if (!redirectTo) {
      return null;
    }
    const link = document.createElement("a");
    link.id = "continue";
    link.className = "button";
    link.href = redirectTo;
    link.textContent = "Continue";
    return link;
  }

  // Puts the "Continue" link (if any) in a paragraph after `element`.
  function offerContinue(element) {
    const link = continueLink();
    if (link && !$("continue")) {
      const line = document.createElement("p");
      line.appendChild(link);
      element.after(line);
    }
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
        say(
          "outcome",
          redirectTo
            ? "Your email address is verified."
            : "Your email address is verified. You can close this page.",
        );
        button.hidden = true;
        $("intro").hidden = true;
        offerContinue($("outcome"));
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
      resend("resend-email", $("resend"), "resend-outcome");
    });
  }

  // Asks for a new verification link for the address in the input `inputId`.
  async function resend(inputId, button, outcomeId) {
    say(inputId + "-error", "");
    say(outcomeId, "");
    busy(button, true);
    const answer = await post("/verify-email/resend", { email: $(inputId).value });
    busy(button, false);
    const invalid = fieldError(answer, "email");
    if (answer.status === 202) {
      say(outcomeId, "If an unverified account has this address, a new link is on its way.");
    } else if (invalid) {
      say(inputId + "-error", invalid);
      $(inputId).focus();
    } else {
      say(outcomeId, general(answer));
    }
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
        $("signin-again").hidden = false;
        offerContinue($("outcome"));
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

  // Signed in (the cookie is set): on to the account page, or, with an
  // accepted `redirect_to`, "Continue" to it and a link to the account page.
  function signedIn(form, text) {
    if (!redirectTo) {
      window.location.assign("/account");
      return;
    }
    form.hidden = true;
    $("other-links").hidden = true;
    say("done-message", text);
    $("done").hidden = false;
    offerContinue($("done-message"));
    $("continue").focus();
  }

  // The shared part of the sign-in and sign-up forms: clears the errors,
  // POSTs email and password to `path`, shows field errors; the answer.
  async function submitCredentials(path, extraErrors) {
    for (const id of ["email-error", "password-error", "outcome"].concat(extraErrors)) {
      say(id, "");
    }
    const submit = $("submit");
    busy(submit, true);
    const answer = await call("POST", path, {
      body: { email: $("email").value, password: $("password").value },
      cookie: true,
    });
    busy(submit, false);
    return answer;
  }

  function signin() {
    const form = $("signin");
    const step = $("second-step");
    let mfaToken = null;
    let method = "totp";
    const input = () => $(method === "totp" ? "code" : "recovery-code");

    // The second step asks for a code of the authenticator app, or a
    // recovery code instead.
    function useMethod(chosen) {
      method = chosen;
      const recovery = chosen === "recovery_code";
      $("code-field").hidden = recovery;
      $("recovery-field").hidden = !recovery;
      $("use-recovery").hidden = recovery;
      $("use-code").hidden = !recovery;
      say("code-outcome", "");
      input().focus();
    }

    function toPassword(text) {
      mfaToken = null;
      step.reset();
      step.hidden = true;
      form.hidden = false;
      $("password").value = "";
      say("outcome", text);
      $("password").focus();
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      $("unverified").hidden = true;
      const answer = await submitCredentials("/browser/signin", []);
      const mfa = answer.status === 200 && answer.body && answer.body.mfa;
      if (answer.status === 200 && answer.body && answer.body.idToken) {
        signedIn(form, "You are signed in.");
      } else if (mfa && mfa.token) {
        // The password was right; no session until the second step.
        mfaToken = mfa.token;
        form.hidden = true;
        step.hidden = false;
        useMethod("totp");
        document.dispatchEvent(new CustomEvent("second-step", { detail: mfa })); // passkeys.js
      } else if (answer.status === 200) {
        say("outcome", general(answer));
      } else if (showFieldErrors(answer, { email: "email", password: "password" })) {
        return;
      } else if (answer.status === 401) {
        say("outcome", "The email address or the password is wrong.");
        $("password").focus();
      } else if (errorType(answer) === "EMAIL_NOT_VERIFIED") {
        $("resend-email").value = $("email").value;
        say("resend-outcome", "");
        $("unverified").hidden = false;
        $("resend").focus();
      } else {
        say("outcome", general(answer));
      }
    });
    $("use-recovery").addEventListener("click", () => useMethod("recovery_code"));
    $("use-code").addEventListener("click", () => useMethod("totp"));
    $("start-over").addEventListener("click", () => toPassword(""));
    step.addEventListener("submit", async (event) => {
      event.preventDefault();
      const field = input();
      say(field.id + "-error", "");
      say("code-outcome", "");
      const code = field.value.trim();
      const submit = $("code-submit");
      busy(submit, true);
      const answer = await call("POST", "/browser/signin/mfa", {
        body: { mfaToken: mfaToken, method: method, code: code },
        cookie: true,
      });
      busy(submit, false);
      const message = (answer.body && answer.body.error && answer.body.error.message) || "";
      if (answer.status === 200 && answer.body && answer.body.idToken) {
        signedIn(step, "You are signed in.");
      } else if (answer.status === 401 && /sign in again/i.test(message)) {
        toPassword("The time for the code ran out, or there were too many wrong codes: sign in again.");
      } else if (answer.status === 401 || fieldError(answer, "code")) {
        say(field.id + "-error", fieldError(answer, "code") || "This code is wrong, expired or already used.");
        field.select();
      } else {
        say("code-outcome", general(answer));
      }
    });
    $("unverified").addEventListener("submit", (event) => {
      event.preventDefault();
      resend("resend-email", $("resend"), "resend-outcome");
    });
  }

  function signup() {
    const form = $("signup");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if ($("password").value !== $("confirm").value) {
        for (const id of ["email-error", "password-error", "outcome"]) {
          say(id, "");
        }
        say("confirm-error", "The two passwords differ.");
        $("confirm").focus();
        return;
      }
      const answer = await submitCredentials("/browser/signup", ["confirm-error"]);
      if (answer.status === 201) {
        signedIn(form, "Your account is created and you are signed in.");
      } else if (answer.status === 202) {
        form.hidden = true;
        $("other-links").hidden = true;
        say(
          "done-message",
          "Check your mail: follow the link we sent to " + $("email").value + " to finish signing up.",
        );
        $("done").hidden = false;
        $("done-account").hidden = true;
      } else if (showFieldErrors(answer, { email: "email", password: "password" })) {
        return;
      } else if (answer.status === 409) {
        say("email-error", "An account already has this email address: sign in instead.");
        $("email").focus();
      } else {
        say("outcome", general(answer));
      }
    });
  }

  window.accountPages = Object.freeze({
    api: api,
    $: $,
    call: call,
    general: general,
    errorType: errorType,
    fieldError: fieldError,
    showFieldErrors: showFieldErrors,
    say: say,
    busy: busy,
    redirectTo: redirectTo,
    withRedirect: withRedirect,
    continueLink: continueLink,
    signedIn: signedIn,
  });

  const pages = {
    signin: signin,
    signup: signup,
    "verify-email": verifyEmail,
    "reset-password": resetPassword,
    "forgot-password": forgotPassword,
  };
  if (pages[page]) {
    pages[page]();
  }
})();
