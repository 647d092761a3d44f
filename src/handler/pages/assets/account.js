// The account page (pages.js runs first and lends its helpers). The session
// is the browser's: its refresh token lives in an HttpOnly cookie this script
// never sees, sent only to `{api}/browser/…`; the ID token lives in a
// variable of this closure only (never in localStorage, sessionStorage or
// document.cookie), and a reload gets a new one from the cookie.
"use strict";

(function () {
  const pages = window.accountPages;
  const $ = pages.$;
  const say = pages.say;
  const busy = pages.busy;
  const general = pages.general;

  let idToken = null;
  let refreshing = null;
  let user = null;

  // Never settles: the page is leaving.
  const leaving = () => new Promise(() => {});

  function toSignin() {
    idToken = null;
    window.location.replace(pages.withRedirect("/signin"));
  }

  // A new ID token from the cookie (the answer rotates the cookie); one
  // request at a time, shared by whoever asks meanwhile.
  function refresh() {
    if (!refreshing) {
      refreshing = pages.call("POST", "/browser/tokens", { cookie: true }).then((answer) => {
        refreshing = null;
        if (answer.status === 200 && answer.body && answer.body.idToken) {
          idToken = answer.body.idToken;
        } else if (answer.status === 401) {
          idToken = null;
        }
        return answer;
      });
    }
    return refreshing;
  }

  // `method path` of the bearer API. On a 401 (the ID token expired), once
  // more with a new one; a session that is over goes to the sign-in page. A
  // step-up refusal (RFC 9470) is the caller's, for `acr_values` only after a
  // new token: another tab may have raised the session to aal2 since.
  const stepUp = (answer) => pages.errorType(answer) === "INSUFFICIENT_USER_AUTHENTICATION";
  const acr = (answer) => stepUp(answer) && /acr_values/.test(answer.authenticate || "");
  async function authed(method, path, body) {
    let answer = await pages.call(method, path, { body: body, token: idToken });
    if (answer.status !== 401 || (stepUp(answer) && !acr(answer))) {
      return answer;
    }
    const renewed = await refresh();
    if (renewed.status === 401) {
      toSignin();
      return leaving();
    }
    if (renewed.status !== 200) {
      return renewed;
    }
    answer = await pages.call(method, path, { body: body, token: idToken });
    if (answer.status === 401 && !stepUp(answer)) {
      toSignin();
      return leaving();
    }
    return answer;
  }

  // Empties the errors and outcomes shown in `container`.
  function clear(container) {
    for (const line of container.querySelectorAll(".error, [role=status]")) {
      line.textContent = "";
    }
  }

  // Shows why `answer` failed: a field error under its input (`fields`: API
  // field → input id), a 403 (a wrong current password) under the input
  // `password`, anything else in `outcome`.
  function explain(answer, fields, password, outcome) {
    if (pages.showFieldErrors(answer, fields)) {
      return;
    }
    if (answer.status === 403 && password) {
      say(password + "-error", "The current password is wrong.");
      $(password).focus();
    } else {
      say(outcome, general(answer));
    }
  }

  // ------------------------------------------------------------ the profile

  function showUser(shown) {
    user = shown;
    const name = $("profile-name");
    name.textContent = shown.name || "Not set";
    name.classList.toggle("muted", !shown.name);
    say("profile-email", shown.email);
    const website = $("profile-website");
    website.textContent = shown.website || "Not set";
    website.classList.toggle("muted", !shown.website);
    say("profile-verified", shown.emailVerified ? "Verified" : "Not verified");
    $("unverified").hidden = shown.emailVerified;
    $("pending").hidden = !shown.pendingEmail;
    say("pending-email", shown.pendingEmail || "");
    $("details-name").value = shown.name || "";
    $("details-email").value = shown.email;
    $("details-website").value = shown.website || "";
    $("details-password").value = "";
    $("details-password-field").hidden = true;
    // For password managers: whose password the password-only forms take.
    for (const input of document.querySelectorAll("input.username")) {
      input.value = shown.email;
    }
  }

  const normal = (email) => email.trim().toLowerCase();

  function emailChanges() {
    return user !== null && normal($("details-email").value) !== normal(user.email);
  }

  $("details-email").addEventListener("input", () => {
    $("details-password-field").hidden = !emailChanges();
  });

  $("resend").addEventListener("click", async () => {
    const button = $("resend");
    say("resend-outcome", "");
    busy(button, true);
    const answer = await authed("POST", "/verify-email/resend");
    busy(button, false);
    if (answer.status === 202) {
      say("resend-outcome", "A new verification link is on its way to " + user.email + ".");
    } else if (answer.status === 409) {
      say("resend-outcome", "Your email address is already verified.");
      await loadUser();
    } else {
      say("resend-outcome", general(answer));
    }
  });

  $("details").addEventListener("submit", async (event) => {
    event.preventDefault();
    clear($("details"));
    const changing = emailChanges();
    const password = $("details-password").value;
    if (changing && !password) {
      $("details-password-field").hidden = false;
      say("details-password-error", "Enter your current password to change the email address.");
      $("details-password").focus();
      return;
    }
    const button = $("details-submit");
    busy(button, true);
    const answer = await authed("PUT", "/details", {
      name: $("details-name").value,
      email: $("details-email").value,
      website: $("details-website").value,
      currentPassword: changing ? password : "",
    });
    busy(button, false);
    if (answer.status === 200 && answer.body && answer.body.user) {
      showUser(answer.body.user);
      say(
        "details-outcome",
        changing
          ? "Saved. Your other devices were signed out, and a verification link was mailed to the new address."
          : "Saved.",
      );
      if (changing) {
        await loadSessions();
      }
      return;
    }
    if (pages.fieldError(answer, "currentPassword") || answer.status === 403) {
      $("details-password-field").hidden = false;
    }
    if (answer.status === 409) {
      say("details-email-error", "Another account has this email address.");
      $("details-email").focus();
      return;
    }
    const fields = { name: "details-name", email: "details-email", website: "details-website" };
    fields.currentPassword = "details-password";
    explain(answer, fields, "details-password", "details-outcome");
  });

  // ----------------------------------------------------------- the password

  $("password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = $("password-form");
    clear(form);
    if ($("new-password").value !== $("repeat-password").value) {
      say("repeat-password-error", "The two new passwords differ.");
      $("repeat-password").focus();
      return;
    }
    const button = $("password-submit");
    busy(button, true);
    const answer = await authed("PUT", "/password", {
      currentPassword: $("current-password").value,
      newPassword: $("new-password").value,
    });
    busy(button, false);
    if (answer.status === 204) {
      form.reset();
      say("password-outcome", "Your password is changed. Your other devices were signed out.");
      await loadSessions();
    } else {
      const fields = { currentPassword: "current-password", newPassword: "new-password" };
      explain(answer, fields, "current-password", "password-outcome");
    }
  });

  // ----------------------------------------------------------- the sessions

  // A name for the device of a user agent, for display only: "Chrome on
  // Linux", "Safari on iOS", or a program's first word ("curl").
  function device(userAgent) {
    const ua = userAgent || "";
    const browser = [
      [/Edg(e|A|iOS)?\//, "Edge"],
      [/OPR\/|Opera/, "Opera"],
      [/Firefox\/|FxiOS\//, "Firefox"],
      [/Chrom(e|ium)\/|CriOS\//, "Chrome"],
      [/Safari\//, "Safari"],
    ].find(([pattern]) => pattern.test(ua));
    const system = [
      [/Android/, "Android"],
      [/iPhone|iPad|iPod/, "iOS"],
      [/CrOS/, "ChromeOS"],
      [/Windows/, "Windows"],
      [/Mac OS X|Macintosh/, "macOS"],
      [/Linux|X11/, "Linux"],
    ].find(([pattern]) => pattern.test(ua));
    if (browser && system) {
      return browser[1] + " on " + system[1];
    }
    if (browser || system) {
      return (browser || system)[1];
    }
    const program = ua.trim().split(/[\s/;(]/)[0];
    return program ? program.slice(0, 40) : "Unknown device";
  }

  function when(seconds) {
    const date = new Date(seconds * 1000);
    const time = document.createElement("time");
    time.dateTime = date.toISOString();
    time.textContent = date.toLocaleString("en", { dateStyle: "medium", timeStyle: "short" });
    return time;
  }

  function sessionItem(session) {
    const shown = device(session.userAgent);
    const item = $("session-template").content.firstElementChild.cloneNode(true);
    const part = (css) => item.querySelector(css);
    item.dataset.session = session.id;
    part(".session-device").textContent = shown;
    part(".session-device").title = session.userAgent || "";
    part(".session-current").hidden = !session.current;
    part(".session-name").textContent = session.name || "";
    part(".session-name").hidden = !session.name;
    part(".session-ip").textContent = session.ip || "Unknown";
    part(".session-created").append(when(session.createdAt));
    part(".session-used").append(when(session.lastUsedAt));
    for (const about of item.querySelectorAll(".session-about")) {
      about.textContent = " the session " + (session.name || shown);
    }
    part(".name-verb").textContent = session.name ? "Rename" : "Name";

    const actions = part(".actions");
    const rename = part(".name-session");
    const end = part(".end-session");
    end.addEventListener("click", () => endSession(session, shown, end));
    end.hidden = session.current;
    const form = part(".name-form");
    const input = part(".name-form input");
    const error = part(".name-form .error");
    input.id = "session-name-" + session.id;
    error.id = input.id + "-error";
    part(".name-form label").htmlFor = input.id;
    input.value = session.name || "";
    rename.addEventListener("click", () => {
      form.hidden = false;
      actions.hidden = true;
      input.focus();
    });
    part(".name-cancel").addEventListener("click", () => {
      form.hidden = true;
      actions.hidden = false;
      input.value = session.name || "";
      error.textContent = "";
      rename.focus();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      nameSession(session, input, error, part(".name-save"));
    });
    return item;
  }

  async function nameSession(session, input, error, save) {
    error.textContent = "";
    const name = input.value.trim();
    busy(save, true);
    const answer = await authed("PUT", "/sessions/" + encodeURIComponent(session.id), {
      name: name || null,
    });
    busy(save, false);
    if (answer.status === 204) {
      say("sessions-outcome", name ? "The session is named “" + name + "”." : "The session's name is removed.");
      await loadSessions();
      focusIn(session.id, ".name-session");
    } else if (answer.status === 404) {
      say("sessions-outcome", "That session has ended.");
      await loadSessions();
      $("sessions-title").focus();
    } else {
      error.textContent = pages.fieldError(answer, "name") || general(answer);
      input.focus();
    }
  }

  async function endSession(session, shown, end) {
    say("sessions-outcome", "");
    busy(end, true);
    const answer = await authed("DELETE", "/sessions/" + encodeURIComponent(session.id));
    busy(end, false);
    if (answer.status === 204 || answer.status === 404) {
      say("sessions-outcome", "The session on " + (session.name || shown) + " is ended.");
      await loadSessions();
      $("sessions-title").focus();
    } else {
      say("sessions-outcome", general(answer));
    }
  }

  function focusIn(id, selector) {
    for (const item of $("sessions").children) {
      if (item.dataset.session === id) {
        const target = item.querySelector(selector);
        if (target) {
          target.focus();
        }
      }
    }
  }

  function showSessions(answer) {
    if (answer.status !== 200 || !answer.body || !Array.isArray(answer.body.sessions)) {
      say("sessions-outcome", general(answer));
      return;
    }
    const sessions = answer.body.sessions.slice().sort((a, b) => {
      if (a.current !== b.current) {
        return a.current ? -1 : 1;
      }
      return b.lastUsedAt - a.lastUsedAt;
    });
    $("sessions").replaceChildren(...sessions.map(sessionItem));
    $("end-others").hidden = sessions.every((session) => session.current);
  }

  async function loadSessions() {
    showSessions(await authed("GET", "/sessions"));
  }

  async function loadUser() {
    const answer = await authed("GET", "/me");
    if (answer.status === 200 && answer.body && answer.body.user) {
      showUser(answer.body.user);
    }
    return answer;
  }

  $("end-others").addEventListener("click", async () => {
    const others = $("end-others");
    say("sessions-outcome", "");
    busy(others, true);
    const answer = await authed("POST", "/signout?scope=others");
    busy(others, false);
    if (answer.status === 200) {
      say("sessions-outcome", "Every other device is signed out.");
      await loadSessions();
      $("sessions-title").focus();
    } else {
      say("sessions-outcome", general(answer));
    }
  });

  // ------------------------------------------------- sign-out and deletion

  // Ends this browser's session and removes its cookie.
  function signOutHere() {
    idToken = null;
    return pages.call("POST", "/browser/signout?scope=local", { cookie: true });
  }

  $("signout").addEventListener("click", async () => {
    const signout = $("signout");
    say("signout-outcome", "");
    busy(signout, true);
    const answer = await signOutHere();
    // A 401: the session was over already, and the cookie is removed.
    if (answer.status === 200 || answer.status === 401) {
      window.location.assign("/signin");
      return;
    }
    busy(signout, false);
    say("signout-outcome", general(answer));
  });

  function showConfirm(on) {
    $("delete-confirm").hidden = !on;
    $("delete-submit").hidden = on;
  }

  $("delete").addEventListener("submit", (event) => {
    event.preventDefault();
    clear($("delete"));
    if (!$("delete-password").value) {
      say("delete-password-error", "Enter your current password.");
      $("delete-password").focus();
      return;
    }
    say("delete-question", "Delete the account " + user.email + " for good? This cannot be undone.");
    showConfirm(true);
    $("delete-confirmed").focus();
  });

  $("delete-cancel").addEventListener("click", () => {
    showConfirm(false);
    $("delete-password").focus();
  });

  $("delete-confirmed").addEventListener("click", async () => {
    const confirmed = $("delete-confirmed");
    clear($("delete"));
    busy(confirmed, true);
    const answer = await authed("DELETE", "/me", { currentPassword: $("delete-password").value });
    busy(confirmed, false);
    if (answer.status === 204) {
      // The session ended with the account: this removes the cookie.
      await signOutHere();
      user = null;
      $("signed-in").remove();
      $("deleted").hidden = false;
      $("signup-again").focus();
      return;
    }
    showConfirm(false);
    explain(answer, { currentPassword: "delete-password" }, "delete-password", "delete-outcome");
  });

  // ------------------------------------------------------------- loading

  async function start() {
    $("loading").hidden = false;
    $("unavailable").hidden = true;
    const renewed = await refresh();
    if (renewed.status === 401) {
      toSignin();
      return;
    }
    let failed = renewed.status === 200 ? null : renewed;
    if (!failed) {
      const [me, sessions] = await Promise.all([loadUser(), authed("GET", "/sessions")]);
      if (me.status === 200) {
        showSessions(sessions);
      } else {
        failed = me;
      }
    }
    $("loading").hidden = true;
    if (failed) {
      say("unavailable-message", general(failed));
      $("unavailable").hidden = false;
      return;
    }
    const link = pages.continueLink();
    if (link) {
      $("continue-line").replaceChildren(link);
      $("continue-line").hidden = false;
    }
    $("signed-in").hidden = false;
    document.dispatchEvent(new Event("account-ready"));
  }

  // For factors.js (the two-step sign-in section).
  window.accountSession = Object.freeze({ authed, refresh, stepUp, loadSessions, when });
  $("retry").addEventListener("click", start);
  start();
})();
