// The "Two-step sign-in" section of the account page (pages.js and
// account.js run first: this uses their helpers and the page's session):
// the factors, adding an authenticator app (its QR code inserted as SVG
// markup, no `data:` URL under the CSP), the recovery codes shown once with a
// download, renaming and removing a factor, a new set of recovery codes.
// passkeys.js adds passkeys with `window.accountFactors`.
"use strict";

(function () {
  const pages = window.accountPages;
  const session = window.accountSession;
  const $ = pages.$;
  const say = pages.say;
  const busy = pages.busy;
  const authed = session.authed;

  const TYPES = { totp: "Authenticator app", webauthn: "Passkey" };
  const ACR = "Removing a factor or renewing the recovery codes needs a sign-in with your code: sign out, then sign in again with your password and a code.";
  let enrolment = null;
  let download = null;

  // Why `answer` failed, for `outcome` (a step-up refusal said plainly).
  function failure(answer) {
    if (session.stepUp(answer)) {
      return /acr_values/.test(answer.authenticate || "") ? ACR : pages.general(answer);
    }
    return pages.general(answer);
  }

  // --------------------------------------------------------- the factors

  function factorItem(factor) {
    const item = $("factor-template").content.firstElementChild.cloneNode(true);
    const part = (css) => item.querySelector(css);
    const type = TYPES[factor.type] || factor.type;
    const passkey = factor.type === "webauthn";
    // A passkey reads as one, then its name: "Passkey · laptop".
    const shown = passkey && factor.name ? type + " · " + factor.name : factor.name || type;
    item.dataset.factor = factor.id;
    part(".factor-name").textContent = shown;
    part(".factor-type").textContent = type;
    part(".factor-created").append(session.when(factor.createdAt));
    if (factor.lastUsedAt) {
      part(".factor-used").append(session.when(factor.lastUsedAt));
    } else {
      part(".factor-used").textContent = "Never";
    }
    for (const about of item.querySelectorAll(".factor-about")) {
      about.textContent = " " + shown;
    }
    const actions = part(".actions");
    const form = part(".name-form");
    const input = part(".name-form input");
    const error = part(".name-form .error");
    input.id = "factor-name-" + factor.id;
    error.id = input.id + "-error";
    part(".name-form label").htmlFor = input.id;
    if (passkey) {
      part(".name-form label").textContent = "Name of this passkey";
    }
    input.value = factor.name || "";
    const confirm = part(".remove-confirm");
    const show = (element) => {
      actions.hidden = element !== actions;
      form.hidden = element !== form;
      confirm.hidden = element !== confirm;
    };
    part(".rename-factor").addEventListener("click", () => {
      show(form);
      input.focus();
    });
    part(".name-cancel").addEventListener("click", () => {
      show(actions);
      input.value = factor.name || "";
      error.textContent = "";
      part(".rename-factor").focus();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      rename(factor, input, error, part(".name-save"));
    });
    part(".remove-question").textContent = "Remove " + shown + "? " +
      (passkey ? "It no longer signs you in." : "Signing in no longer asks for its codes.");
    part(".remove-factor").addEventListener("click", () => {
      show(confirm);
      part(".remove-confirmed").focus();
    });
    part(".remove-cancel").addEventListener("click", () => {
      show(actions);
      part(".remove-factor").focus();
    });
    part(".remove-confirmed").addEventListener("click", () =>
      remove(factor, shown, part(".remove-confirmed")),
    );
    return item;
  }

  async function rename(factor, input, error, save) {
    error.textContent = "";
    const name = input.value.trim();
    busy(save, true);
    const answer = await authed("PUT", "/mfa/" + encodeURIComponent(factor.id), { name: name || null });
    busy(save, false);
    if (answer.status === 204) {
      const what = factor.type === "webauthn" ? "passkey" : "authenticator";
      say("factors-outcome", name ? "The " + what + " is named “" + name + "”." : "The name is removed.");
      await load();
      $("two-step-title").focus();
    } else {
      error.textContent = pages.fieldError(answer, "name") || failure(answer);
      input.focus();
    }
  }

  async function remove(factor, shown, button) {
    say("factors-outcome", "");
    busy(button, true);
    const answer = await authed("DELETE", "/mfa/" + encodeURIComponent(factor.id));
    busy(button, false);
    if (answer.status === 204 || answer.status === 404) {
      await load();
      say("factors-outcome", shown + " is removed.");
      $("two-step-title").focus();
    } else {
      say("factors-outcome", failure(answer));
    }
  }

  async function load() {
    const answer = await authed("GET", "/mfa");
    if (answer.status !== 200 || !answer.body || !Array.isArray(answer.body.factors)) {
      say("factors-outcome", failure(answer));
      return;
    }
    const factors = answer.body.factors;
    $("factors").replaceChildren(...factors.map(factorItem));
    $("factors-off").hidden = factors.length > 0;
    $("renew-codes").hidden = factors.length === 0;
    const left = answer.body.recoveryCodesLeft;
    $("recovery-left").hidden = factors.length === 0;
    say(
      "recovery-left",
      left === 1 ? "1 recovery code left." : (left || 0) + " recovery codes left.",
    );
  }

  // ---------------------------------------------------------- enrolment

  async function enrol(currentPassword) {
    const add = $("add-totp");
    say("factors-outcome", "");
    say("totp-current-password-error", "");
    busy(add, true);
    const body = currentPassword === undefined ? {} : { currentPassword: currentPassword };
    const answer = await authed("POST", "/mfa/totp", body);
    busy(add, false);
    if (answer.status === 201 && answer.body && answer.body.id) {
      $("totp-password").hidden = true;
      $("totp-password").reset();
      showEnrolment(answer.body);
    } else if (session.stepUp(answer) && /max_age/.test(answer.authenticate || "")) {
      // Signed in too long ago: the password again.
      $("totp-password").hidden = false;
      $("totp-current-password").focus();
    } else if (session.stepUp(answer)) {
      say("factors-outcome", "Adding another authenticator needs a sign-in with your code: sign out, then sign in again with your password and a code.");
    } else if (answer.status === 403 && currentPassword !== undefined) {
      say("totp-current-password-error", "The current password is wrong.");
      $("totp-current-password").focus();
    } else {
      say("factors-outcome", failure(answer));
    }
  }

  function showEnrolment(pending) {
    enrolment = pending;
    // The SVG comes from this service: parsed as SVG, inserted as markup.
    const svg = new DOMParser().parseFromString(pending.qrSvg, "image/svg+xml").documentElement;
    const qr = $("totp-qr");
    qr.replaceChildren();
    if (svg.nodeName.toLowerCase() === "svg") {
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", "QR code for your authenticator app");
      qr.append(document.importNode(svg, true));
    }
    say("totp-secret", pending.secret.replace(/(.{4})(?=.)/g, "$1 "));
    $("enrol").reset();
    say("totp-code-error", "");
    $("enrol").hidden = false;
    $("add-totp").hidden = true;
    $("totp-code").focus();
  }

  function endEnrolment() {
    enrolment = null;
    $("enrol").hidden = true;
    $("totp-qr").replaceChildren();
    say("totp-secret", "");
    $("add-totp").hidden = false;
  }

  async function confirmEnrolment() {
    say("totp-code-error", "");
    const button = $("totp-confirm");
    busy(button, true);
    const path = "/mfa/totp/" + encodeURIComponent(enrolment.id) + "/confirm";
    const answer = await authed("POST", path, { code: $("totp-code").value.trim() });
    busy(button, false);
    if (answer.status === 200) {
      endEnrolment();
      // The server raised this session to aal2: a new ID token says so.
      await session.refresh();
      await load();
      const ended = (answer.body && answer.body.sessionsEnded) || 0;
      say(
        "factors-outcome",
        "Two-step sign-in is on." +
          (ended ? " Your other devices were signed out: they sign in again with a code." : ""),
      );
      await session.loadSessions();
      if (answer.body && Array.isArray(answer.body.recoveryCodes)) {
        showCodes(answer.body.recoveryCodes);
      } else {
        $("two-step-title").focus();
      }
    } else if (answer.status === 404) {
      endEnrolment();
      say("factors-outcome", "This setup took too long and has expired: add the app again.");
    } else if (answer.status === 400 || answer.status === 401) {
      const message = pages.fieldError(answer, "code");
      say("totp-code-error", message ? "This code is wrong: enter the code the app shows now." : failure(answer));
      $("totp-code").select();
    } else {
      say("totp-code-error", failure(answer));
    }
  }

  // ----------------------------------------------------- recovery codes

  function showCodes(codes) {
    const text = codes.join("\n");
    say("recovery-codes", text);
    if (download) {
      URL.revokeObjectURL(download);
    }
    const file = "Recovery codes for " + (document.querySelector("input.username").value || "your account") +
      "\nEach works once.\n\n" + text + "\n";
    download = URL.createObjectURL(new Blob([file], { type: "text/plain" }));
    $("recovery-download").href = download;
    $("recovery").hidden = false;
    $("recovery-title").focus();
  }

  function hideCodes() {
    $("recovery").hidden = true;
    say("recovery-codes", "");
    if (download) {
      URL.revokeObjectURL(download);
      download = null;
    }
    $("recovery-download").href = "/account";
  }

  $("renew-codes").addEventListener("click", async () => {
    const button = $("renew-codes");
    say("factors-outcome", "");
    busy(button, true);
    const answer = await authed("POST", "/mfa/recovery-codes");
    busy(button, false);
    if (answer.status === 200 && answer.body && Array.isArray(answer.body.recoveryCodes)) {
      await load();
      say("factors-outcome", "New recovery codes: the old ones no longer work.");
      showCodes(answer.body.recoveryCodes);
    } else {
      say("factors-outcome", failure(answer));
    }
  });

  $("recovery-done").addEventListener("click", () => {
    hideCodes();
    $("two-step-title").focus();
  });

  $("add-totp").addEventListener("click", () => enrol(undefined));
  $("totp-password").addEventListener("submit", (event) => {
    event.preventDefault();
    const password = $("totp-current-password").value;
    if (!password) {
      say("totp-current-password-error", "Enter your current password.");
      $("totp-current-password").focus();
      return;
    }
    enrol(password);
  });
  $("totp-password-cancel").addEventListener("click", () => {
    $("totp-password").reset();
    $("totp-password").hidden = true;
    $("add-totp").focus();
  });
  $("enrol").addEventListener("submit", (event) => {
    event.preventDefault();
    confirmEnrolment();
  });
  $("totp-cancel").addEventListener("click", () => {
    endEnrolment();
    $("add-totp").focus();
  });

  // For passkeys.js: a passkey is added like the app, its codes shown alike.
  window.accountFactors = Object.freeze({ load, showCodes, failure });
  document.addEventListener("account-ready", load);
})();
