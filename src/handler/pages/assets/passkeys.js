// Passkeys on /signin and /account (issue 30). Served after pages.js, in the
// same /assets/pages.js, so it runs on every page but acts on these two only;
// on /account, account.js and factors.js run after it, and this uses what
// they lend (`window.accountSession`, `window.accountFactors`) once the page
// is ready. The API's options carry their bytes as base64url: the browser's
// JSON helpers (`PublicKeyCredential.parse…OptionsFromJSON`, `toJSON`) read
// and write them. Without WebAuthn in the browser, or when the service says
// passkeys are off (503: `PUBLIC_URL` on an IP address), nothing of
// passkeys is offered.
"use strict";

(function () {
  const page = document.body.dataset.page;
  const pages = window.accountPages;
  if (!pages || (page !== "signin" && page !== "account")) {
    return;
  }
  const $ = pages.$;
  const say = pages.say;
  const busy = pages.busy;
  const PKC = window.PublicKeyCredential;
  const supported =
    window.isSecureContext === true &&
    typeof PKC === "function" &&
    typeof PKC.parseCreationOptionsFromJSON === "function" &&
    typeof PKC.parseRequestOptionsFromJSON === "function" &&
    !!navigator.credentials;

  // Whether `answer` (of a start) says passkeys are off on this service.
  function off(answer) {
    const message = (answer.body && answer.body.error && answer.body.error.message) || "";
    return answer.status === 503 && /passkeys are off/i.test(message);
  }

  // What to say when the browser's passkey prompt failed with `error`;
  // `done`: what did not happen ("created", "used").
  function refused(error, done) {
    const name = error && error.name;
    if (name === "NotAllowedError") {
      return "No passkey was " + done + ": the prompt was closed or timed out. Try again.";
    }
    if (name === "InvalidStateError") {
      return "This device or password manager already holds a passkey of your account.";
    }
    const detail = error && error.message ? ": " + error.message : ".";
    return "The browser could not use a passkey" + detail;
  }

  // POSTs `body` to the start at `path`, then asks the browser for an
  // assertion with the options it answers: `mediation` "conditional" for
  // the autofill, none for the browser's prompt; `controller` aborts it.
  // `{credential}` (as JSON), `{answer}` (the start failed), `{error}` (the
  // browser's), or `{aborted: true}`.
  async function assertion(path, body, mediation, controller) {
    const answer = await pages.call("POST", path, { body: body });
    if (controller.signal.aborted) {
      return { aborted: true };
    }
    if (answer.status !== 200 || !answer.body || !answer.body.publicKey) {
      return { answer: answer };
    }
    try {
      const request = {
        publicKey: PKC.parseRequestOptionsFromJSON(answer.body.publicKey),
        signal: controller.signal,
      };
      if (mediation) {
        request.mediation = mediation;
      }
      const credential = await navigator.credentials.get(request);
      return credential ? { credential: credential.toJSON() } : { aborted: true };
    } catch (error) {
      return controller.signal.aborted ? { aborted: true } : { error: error };
    }
  }

  // ------------------------------------------------------------- /signin

  function signin() {
    const form = $("signin");
    const step = $("second-step");
    let pending = null; // The AbortController of the passkey request in flight.
    let enabled = true;
    let mfa = null;

    function abort() {
      if (pending) {
        pending.abort();
        pending = null;
      }
    }

    function turnOff() {
      abort();
      enabled = false;
      $("passkey-signin-line").hidden = true;
      $("use-passkey-line").hidden = true;
    }

    // A passkey alone signs in: from the autofill of the email field
    // (`conditional`), or from the button (the browser's own prompt). A
    // failure from the button is said, and the autofill offered again; one of
    // the autofill is said only once the service refused the passkey, and
    // the autofill waits for the next visit of the email field.
    async function alone(conditional) {
      abort();
      const controller = new AbortController();
      pending = controller;
      const button = $("passkey-signin");
      if (!conditional) {
        say("outcome", "");
        say("passkey-outcome", "");
        busy(button, true);
      }
      const mediation = conditional ? "conditional" : undefined;
      const got = await assertion("/signin/passkey/start", {}, mediation, controller);
      if (pending === controller) {
        pending = null;
      }
      if (got.aborted) {
        if (!conditional) {
          busy(button, false);
        }
        return;
      }
      let failure = null;
      if (got.answer && off(got.answer)) {
        turnOff();
      } else if (got.answer || got.error) {
        failure = got.answer ? pages.general(got.answer) : refused(got.error, "used");
        failure = conditional ? null : failure;
      } else {
        busy(button, true);
        const answer = await pages.call("POST", "/browser/signin/passkey/finish", {
          body: { credential: got.credential },
          cookie: true,
        });
        if (answer.status === 200 && answer.body && answer.body.idToken) {
          pages.signedIn(form, "You are signed in.");
          return;
        }
        failure = finishFailure(answer);
      }
      busy(button, false);
      if (failure) {
        say("passkey-outcome", failure);
      }
      if (!conditional) {
        autofill();
      }
    }

    // What to say when the service refused a passkey's sign-in.
    function finishFailure(answer) {
      if (answer.status === 401) {
        return "This passkey signs nobody in here (it may have been removed, or it took too long): try again, or use your password.";
      }
      if (pages.errorType(answer) === "EMAIL_NOT_VERIFIED") {
        return "This account's email address is not verified yet: open the link we mailed to it first.";
      }
      return pages.general(answer);
    }

    // The browser's passkey autofill on the email field, where it has one
    // (and no passkey request is in flight already).
    let checking = false;
    let sent = 0; // Forms sent: a password sent meanwhile wins.
    async function autofill() {
      if (checking || pending || !enabled || form.hidden) {
        return;
      }
      checking = true;
      const before = sent;
      let available = false;
      try {
        available = typeof PKC.isConditionalMediationAvailable === "function" &&
          (await PKC.isConditionalMediationAvailable());
      } catch (e) {
        available = false;
      }
      checking = false;
      if (available && enabled && !pending && !form.hidden && sent === before) {
        alone(true);
      }
    }

    // The second step with a passkey: its own start, then the assertion as
    // the answer of `POST /browser/signin/mfa`.
    async function secondStep() {
      abort();
      const controller = new AbortController();
      pending = controller;
      const button = $("use-passkey");
      say("code-outcome", "");
      busy(button, true);
      const got = await assertion("/signin/mfa/webauthn/start", { mfaToken: mfa.token }, undefined, controller);
      if (pending === controller) {
        pending = null;
      }
      let answer = got.answer;
      if (got.credential) {
        answer = await pages.call("POST", "/browser/signin/mfa", {
          body: { mfaToken: mfa.token, method: "webauthn", credential: got.credential },
          cookie: true,
        });
      }
      busy(button, false);
      if (got.aborted) {
        return;
      }
      if (got.error) {
        say("code-outcome", refused(got.error, "used"));
        return;
      }
      const message = (answer.body && answer.body.error && answer.body.error.message) || "";
      if (answer.status === 200 && answer.body && answer.body.idToken) {
        pages.signedIn(step, "You are signed in.");
      } else if (answer.status === 401 && /sign in again/i.test(message)) {
        $("start-over").click();
        say("outcome", "The time for the second step ran out, or there were too many failed attempts: sign in again.");
      } else if (answer.status === 401) {
        say("code-outcome", "This passkey was not accepted: try again, or use a code.");
      } else if (off(answer)) {
        turnOff();
        say("code-outcome", "Passkeys are not available here: use a code.");
      } else {
        say("code-outcome", pages.general(answer));
      }
    }

    if (!supported) {
      return;
    }
    $("passkey-signin-line").hidden = false;
    $("passkey-signin").addEventListener("click", () => alone(false));
    $("use-passkey").addEventListener("click", secondStep);
    // A password sent ends the passkey request (before pages.js sends it).
    document.addEventListener(
      "submit",
      () => {
        sent += 1;
        abort();
        say("passkey-outcome", "");
      },
      true,
    );
    // Back on the email field (after a password, "Start over", a passkey
    // refused): the autofill offers passkeys again.
    $("email").addEventListener("focus", autofill);
    // pages.js asks for the second step: `mfa` of the password's answer.
    // Without an authenticator app, the passkey is the second step, and a
    // recovery code the other way (pages.js shows the app's code field).
    let noApp = false;
    document.addEventListener("second-step", (event) => {
      abort();
      mfa = event.detail;
      const methods = Array.isArray(mfa.methods) ? mfa.methods : [];
      const offered = enabled && methods.includes("webauthn");
      noApp = !methods.includes("totp");
      $("use-passkey-line").hidden = !offered;
      $("use-passkey").classList.toggle("secondary", !(offered && noApp));
      $("code-submit").hidden = offered && noApp;
      if (noApp && offered) {
        $("code-field").hidden = true;
      } else if (noApp) {
        $("use-recovery").click();
      }
      $("use-code").hidden = true;
      if (offered) {
        $("use-passkey").focus();
      }
    });
    // A recovery code instead (once pages.js has shown its field).
    $("use-recovery").addEventListener("click", () => {
      $("code-submit").hidden = false;
      $("use-code").hidden = noApp;
    });
    autofill();
  }

  // ------------------------------------------------------------ /account

  function account() {
    const add = $("add-passkey");
    const form = $("passkey-add");
    const asking = $("passkey-password-field");

    function clearAll() {
      for (const id of ["passkey-name-error", "passkey-current-password-error", "passkey-outcome"]) {
        say(id, "");
      }
    }

    function close() {
      form.reset();
      clearAll();
      asking.hidden = true;
      form.hidden = true;
      add.hidden = false;
    }

    // Why the registration's start failed, said where it belongs.
    function startFailed(answer, session, factors, password) {
      if (session.stepUp(answer) && /max_age/.test(answer.authenticate || "")) {
        // Signed in too long ago: the password again.
        asking.hidden = false;
        $("passkey-current-password").focus();
      } else if (session.stepUp(answer)) {
        say("passkey-outcome", "Adding another factor needs a sign-in with your second step: sign out, then sign in again with your password and a code or passkey.");
      } else if (answer.status === 403 && password !== undefined) {
        say("passkey-current-password-error", "The current password is wrong.");
        $("passkey-current-password").focus();
      } else if (off(answer)) {
        close();
        add.hidden = true;
        say("factors-outcome", "Passkeys are not available on this service.");
      } else {
        say("passkey-outcome", factors.failure(answer));
      }
    }

    async function register(name, password) {
      const session = window.accountSession;
      const factors = window.accountFactors;
      const body = password === undefined ? {} : { currentPassword: password };
      const started = await session.authed("POST", "/mfa/webauthn/register/start", body);
      if (started.status !== 200 || !started.body || !started.body.publicKey) {
        startFailed(started, session, factors, password);
        return;
      }
      let credential = null;
      try {
        credential = await navigator.credentials.create({
          publicKey: PKC.parseCreationOptionsFromJSON(started.body.publicKey),
        });
      } catch (error) {
        say("passkey-outcome", refused(error, "created"));
        return;
      }
      if (!credential) {
        say("passkey-outcome", "No passkey was created. Try again.");
        return;
      }
      const finish = { credential: credential.toJSON() };
      if (name) {
        finish.name = name;
      }
      const answer = await session.authed("POST", "/mfa/webauthn/register/finish", finish);
      if (answer.status === 201 && answer.body && answer.body.id) {
        close();
        // The first factor raised this session to aal2: a new ID token says so.
        await session.refresh();
        await factors.load();
        const ended = answer.body.sessionsEnded || 0;
        say(
          "factors-outcome",
          "The passkey" + (name ? " “" + name + "”" : "") + " is added: it signs you in." +
            (ended ? " Your other devices were signed out: they sign in again with a second step." : ""),
        );
        await session.loadSessions();
        if (Array.isArray(answer.body.recoveryCodes)) {
          factors.showCodes(answer.body.recoveryCodes);
        } else {
          $("two-step-title").focus();
        }
      } else if (pages.fieldError(answer, "name")) {
        say("passkey-name-error", pages.fieldError(answer, "name"));
        $("passkey-name").focus();
      } else if (pages.fieldError(answer, "credential")) {
        say("passkey-outcome", "The service did not accept this passkey (it may have taken too long): try again.");
      } else {
        say("passkey-outcome", factors.failure(answer));
      }
    }

    if (!supported) {
      return;
    }
    add.hidden = false;
    add.addEventListener("click", () => {
      say("factors-outcome", "");
      clearAll();
      form.hidden = false;
      add.hidden = true;
      $("passkey-name").focus();
    });
    $("passkey-cancel").addEventListener("click", () => {
      close();
      add.focus();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearAll();
      const password = asking.hidden ? undefined : $("passkey-current-password").value;
      if (password === "") {
        say("passkey-current-password-error", "Enter your current password.");
        $("passkey-current-password").focus();
        return;
      }
      const button = $("passkey-create");
      busy(button, true);
      try {
        await register($("passkey-name").value.trim(), password);
      } finally {
        busy(button, false);
      }
    });
  }

  if (page === "signin") {
    signin();
  } else {
    account();
  }
})();
