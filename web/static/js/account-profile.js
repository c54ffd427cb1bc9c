// The account screen's profile, sessions and security record.
import { h, field, when, label, notice, busy, confirmDialog, pager } from "./account-ui.js";

// profile: the name, the email address (changed through a link sent to the
// new address) and the password.
export function profile(ctx, section, viewer) {
  const status = h("div", { class: "section-status" });
  const nameForm = h("form", { id: "profile-form", class: "stack" },
    field("Display name", { id: "profile-name", name: "name", maxlength: 100, autocomplete: "name", value: viewer.name }),
    h("button", { type: "submit", text: "Save name" }));
  nameForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    ctx.clearError(status);
    try {
      await busy(nameForm, () => ctx.gql(`mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { user { id name } } }`,
        { input: { name: nameForm.elements.name.value.trim() } }));
      notice(status, "Your name is saved.");
      ctx.refreshViewer?.();
    } catch (err) {
      ctx.showError(status, err);
    }
  });

  const verified = viewer.emailVerified
    ? h("span", { class: "badge ok", text: "Verified" })
    : h("span", { class: "badge warn", text: "Not verified" });
  const resend = viewer.emailVerified ? null : h("button", { type: "button", id: "profile-resend-verification", class: "secondary", text: "Send the verification link again" });
  resend?.addEventListener("click", async () => {
    ctx.clearError(status);
    try {
      const d = await busy(resend, () => ctx.gql(`mutation { resendVerification(input: {}) { message } }`));
      notice(status, d.resendVerification.message);
    } catch (err) {
      ctx.showError(status, err);
    }
  });

  const emailForm = h("form", { id: "email-form", class: "stack" },
    h("h3", { text: "Change email" }),
    field("New email address", { id: "email-new", name: "newEmail", type: "email", required: true, autocomplete: "email", maxlength: 254 }),
    field("Your password", { id: "email-password", name: "password", type: "password", required: true, autocomplete: "current-password", maxlength: 128 }),
    h("button", { type: "submit", text: "Send confirmation link" }));
  emailForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    ctx.clearError(status);
    try {
      const d = await busy(emailForm, () => ctx.gql(`mutation($input: ChangeEmailInput!) { changeEmail(input: $input) { message } }`,
        { input: { newEmail: emailForm.elements.newEmail.value.trim(), password: emailForm.elements.password.value } }));
      emailForm.reset();
      notice(status, d.changeEmail.message);
    } catch (err) {
      ctx.showError(status, err);
    }
  });

  const passwordForm = h("form", { id: "password-form", class: "stack" },
    h("h3", { text: "Change password" }),
    // For password managers: which account the new password belongs to.
    h("input", { type: "email", name: "username", autocomplete: "username", value: viewer.email, hidden: true, readonly: true, tabindex: -1 }),
    field("Current password", { id: "password-current", name: "currentPassword", type: "password", required: true, autocomplete: "current-password", maxlength: 128 }),
    field("New password", { id: "password-new", name: "newPassword", type: "password", required: true, autocomplete: "new-password", minlength: 8, maxlength: 128 },
      "8 to 128 characters. Every other session is signed out."),
    h("button", { type: "submit", text: "Change password" }));
  passwordForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    ctx.clearError(status);
    try {
      await busy(passwordForm, () => ctx.gql(`mutation($input: ChangePasswordInput!) { changePassword(input: $input) { user { id } } }`,
        { input: { currentPassword: passwordForm.elements.currentPassword.value, newPassword: passwordForm.elements.newPassword.value } }));
      passwordForm.reset();
      notice(status, "Your password is changed, and every other session is signed out.");
      section.dispatchEvent(new CustomEvent("sessions-changed", { bubbles: true }));
    } catch (err) {
      ctx.showError(status, err);
    }
  });

  section.append(
    h("h2", { text: "Profile" }),
    h("p", { class: "email-line" }, h("span", { class: "muted", text: "Email: " }), h("strong", { id: "profile-email", text: viewer.email }), " ", verified, " ", resend),
    status,
    h("div", { class: "cols" }, nameForm, emailForm, passwordForm));
}

const SESSIONS = `query { viewer { id sessions { id ip userAgent createdAt lastSeenAt expiresAt current } } }`;

// sessions lists the sessions that still work, the current one marked.
export function sessions(ctx, section) {
  const status = h("div", { class: "section-status" });
  const list = h("ul", { class: "rows", id: "session-list" });
  const others = h("button", { type: "button", id: "revoke-others", class: "secondary", text: "Sign out every other session" });

  async function load() {
    try {
      const d = await ctx.gql(SESSIONS);
      const rows = d.viewer?.sessions || [];
      list.replaceChildren(...rows.map(row));
      others.disabled = !rows.some((s) => !s.current);
    } catch (err) {
      ctx.showError(status, err);
    }
  }

  function row(s) {
    const revoke = s.current ? null : h("button", { type: "button", class: "revoke secondary", text: "Sign out", "aria-label": `Sign out the session from ${s.ip}` });
    revoke?.addEventListener("click", async () => {
      ctx.clearError(status);
      const ok = await confirmDialog(ctx, { title: "Sign out this session?", body: `The device using ${describeAgent(s.userAgent)} from ${s.ip} is signed out at its next request.`, confirmLabel: "Sign it out" });
      if (!ok) return;
      try {
        await ctx.gql(`mutation($input: RevokeSessionInput!) { revokeSession(input: $input) { revokedSessionId } }`, { input: { sessionId: s.id } });
        notice(status, "That session is signed out.");
        load();
      } catch (err) {
        ctx.showError(status, err);
      }
    });
    return h("li", { class: "session row", dataset: { id: s.id, current: String(s.current) } },
      h("div", { class: "row-main" },
        h("strong", { text: describeAgent(s.userAgent) }), s.current ? h("span", { class: "badge ok", text: "This device" }) : null,
        h("div", { class: "muted small" }, `${s.ip} · signed in `, when(s.createdAt), " · last seen ", when(s.lastSeenAt))),
      revoke);
  }

  others.addEventListener("click", async () => {
    ctx.clearError(status);
    const ok = await confirmDialog(ctx, { title: "Sign out every other session?", body: "Every device but this one is signed out at its next request.", confirmLabel: "Sign them out" });
    if (!ok) return;
    try {
      const d = await ctx.gql(`mutation { revokeOtherSessions(input: {}) { revokedCount } }`);
      const n = d.revokeOtherSessions.revokedCount;
      notice(status, n === 1 ? "1 other session is signed out." : `${n} other sessions are signed out.`);
      load();
    } catch (err) {
      ctx.showError(status, err);
    }
  });

  section.append(h("h2", { text: "Sessions" }),
    h("p", { class: "muted", text: "The devices signed in to your account." }), status, list, h("div", { class: "actions" }, others));
  document.addEventListener("sessions-changed", load);
  load();
  return () => document.removeEventListener("sessions-changed", load);
}

// describeAgent names a browser and system from a user agent, roughly.
export function describeAgent(ua) {
  if (!ua) return "Unknown device";
  const browser = /Edg\//.test(ua) ? "Edge" : /OPR\//.test(ua) ? "Opera" : /Firefox\//.test(ua) ? "Firefox"
    : /Chrome\/|Chromium\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : /curl\//i.test(ua) ? "curl" : null;
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS X/.test(ua) ? "macOS"
    : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser || os || ua.slice(0, 60);
}

// What each security event says, in the past tense.
const EVENT_TEXT = {
  SIGN_UP: "Account created",
  SIGN_UP_ATTEMPT_EXISTING: "Someone tried to sign up again with your address",
  VERIFICATION_REQUESTED: "Verification link sent",
  EMAIL_VERIFIED: "Email verified",
  SIGN_IN: "Signed in",
  SIGN_IN_FAILED: "Sign-in failed: wrong password",
  SIGN_OUT: "Signed out",
  PASSWORD_RESET_REQUESTED: "Password reset link sent",
  PASSWORD_RESET_COMPLETED: "Password reset",
  PASSWORD_CHANGED: "Password changed",
  PASSWORD_HASH_UPGRADED: "Stored password made stronger",
  EMAIL_CHANGE_REQUESTED: "Email change asked for",
  EMAIL_CHANGED: "Email changed",
  SESSION_REVOKED: "A session was signed out from another",
  RATE_LIMITED: "Requests refused for going too fast",
  CAPTCHA_FAILED: "CAPTCHA refused",
  SUSPENDED: "Account suspended",
  UNSUSPENDED: "Suspension lifted",
  PROFILE_UPDATED: "Name changed",
};

const EVENTS = `query($after: String) { viewer { id securityEvents(first: 10, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { id kind ip userAgent createdAt } } } } }`;

// securityEvents pages through the account's security record.
export function securityEvents(ctx, section) {
  const status = h("div", { class: "section-status" });
  const list = h("ol", { class: "rows", id: "security-event-list" });
  const count = h("span", { class: "count" });
  section.append(h("h2", {}, "Security events ", count), status, list);
  const p = pager(ctx, {
    list, errors: status, moreId: "security-more", countEl: count, empty: "Nothing recorded yet.",
    load: async (after) => (await ctx.gql(EVENTS, { after })).viewer.securityEvents,
    render: (ev) => h("li", { class: "security-event row", dataset: { kind: ev.kind } },
      h("div", { class: "row-main" }, h("strong", { text: EVENT_TEXT[ev.kind] || label(ev.kind) }),
        h("div", { class: "muted small" }, when(ev.createdAt), ` · ${ev.ip} · ${describeAgent(ev.userAgent)}`))),
  });
  p.reload();
  document.addEventListener("sessions-changed", p.reload);
  return () => document.removeEventListener("sessions-changed", p.reload);
}
