// Signing up, in and out, verifying the email address and resetting the
// password. The session lives in an HttpOnly cookie the server sets on
// signIn; this page never sees or stores it.

import { h, field, busy } from "./dom.js";

const SIGN_UP = `mutation SignUp($input: SignUpInput!) { signUp(input: $input) { message } }`;
const SIGN_IN = `mutation SignIn($input: SignInInput!) { signIn(input: $input) { user { id } } }`;
const LEGAL = `query Legal { legalDocuments { kind version url inEffect } serverInfo { integrations { email { provider } } } }`;
const REQUEST_RESET = `mutation RequestReset($input: RequestPasswordResetInput!) { requestPasswordReset(input: $input) { message } }`;
const RESET = `mutation Reset($input: ResetPasswordInput!) { resetPassword(input: $input) { message } }`;
const VERIFY = `mutation Verify($input: VerifyEmailInput!) { verifyEmail(input: $input) { user { id emailVerified } } }`;
const CONFIRM_EMAIL = `mutation ConfirmEmail($input: ConfirmEmailChangeInput!) { confirmEmailChange(input: $input) { user { id email } } }`;

const LEGAL_NAMES = { PRIVACY_POLICY: "privacy policy", TERMS: "terms of service" };

function linkToken() {
  return new URLSearchParams(location.search).get("token") || "";
}

export function mountSignIn(root, ctx) {
  const email = h("input", { id: "signin-email", type: "email", autocomplete: "username", required: true, maxlength: 254 });
  const password = h("input", { id: "signin-password", type: "password", autocomplete: "current-password", required: true, maxlength: 128 });
  const form = h("form", { id: "signin-form", novalidate: false },
    field("Email", email),
    field("Password", password),
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(form, async () => {
      ctx.clearError(form);
      try {
        await ctx.gql(SIGN_IN, { input: { email: email.value.trim(), password: password.value } });
      } catch (err) {
        ctx.showError(form, err);
        return;
      }
      password.value = "";
      await ctx.signedIn();
    });
  });
  root.classList.add("narrow");
  root.append(
    h("h1", {}, "Sign in to FastImage"),
    form,
    h("p", {}, "New here? ", h("a", { href: "#/signup" }, "Create an account"), "."),
    h("p", {}, h("a", { href: "#/reset" }, "Forgot your password?")));
  email.focus();
}

export function mountSignUp(root, ctx) {
  const name = h("input", { id: "signup-name", type: "text", autocomplete: "name", maxlength: 100 });
  const email = h("input", { id: "signup-email", type: "email", autocomplete: "email", required: true, maxlength: 254 });
  const password = h("input", { id: "signup-password", type: "password", autocomplete: "new-password", required: true, minlength: 8, maxlength: 128 });
  const accept = h("input", { id: "signup-accept", type: "checkbox", required: true });
  const acceptText = h("span", {}, "I accept the privacy policy and the terms of service.");
  const submit = h("button", { type: "submit", class: "primary" }, "Create my account");
  const form = h("form", { id: "signup-form" },
    field("Name (optional)", name),
    field("Email", email),
    field("Password", password, "8 to 128 characters; common passwords are refused."),
    h("label", { class: "check" }, accept, acceptText),
    submit);
  let devOutbox = false;
  ctx.gql(LEGAL).then((data) => {
    devOutbox = data.serverInfo.integrations.email.provider === "outbox";
    const docs = data.legalDocuments.filter((d) => d.inEffect);
    if (!docs.length) return;
    const parts = ["I accept the "];
    docs.forEach((d, i) => {
      if (i > 0) parts.push(i === docs.length - 1 ? " and the " : ", the ");
      parts.push(h("a", { href: d.url, target: "_blank", rel: "noopener" }, `${LEGAL_NAMES[d.kind] || d.kind} (version ${d.version})`));
    });
    parts.push(".");
    acceptText.replaceChildren(...parts);
  }).catch((err) => ctx.showError(form, err));

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(form, async () => {
      ctx.clearError(form);
      let data;
      try {
        data = await ctx.gql(SIGN_UP, { input: { name: name.value.trim(), email: email.value.trim(), password: password.value } });
      } catch (err) {
        ctx.showError(form, err);
        return;
      }
      const done = h("div", { id: "signup-done", class: "notice", role: "status" },
        h("p", {}, data.signUp.message),
        h("p", {}, "Then come back and ", h("a", { href: "#/signin" }, "sign in"), "."));
      if (devOutbox) {
        done.append(h("p", { class: "small" }, "Development server: mail stays on this machine; read it in the ",
          h("a", { href: "/dev/outbox", id: "dev-outbox-link" }, "outbox"), "."));
      }
      form.replaceWith(done);
    });
  });
  root.classList.add("narrow");
  root.append(
    h("h1", {}, "Create your FastImage account"),
    form,
    h("p", {}, "Already have an account? ", h("a", { href: "#/signin" }, "Sign in"), "."));
  email.focus();
}

export function mountResetRequest(root, ctx) {
  const email = h("input", { id: "reset-email", type: "email", autocomplete: "email", required: true, maxlength: 254 });
  const form = h("form", { id: "reset-request-form" },
    field("Email", email),
    h("button", { type: "submit", class: "primary" }, "Email me a reset link"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(form, async () => {
      ctx.clearError(form);
      try {
        const data = await ctx.gql(REQUEST_RESET, { input: { email: email.value.trim() } });
        form.replaceWith(h("p", { id: "reset-request-done", class: "notice", role: "status" }, data.requestPasswordReset.message));
      } catch (err) {
        ctx.showError(form, err);
      }
    });
  });
  root.classList.add("narrow");
  root.append(h("h1", {}, "Reset your password"),
    h("p", { class: "muted" }, "We will email you a link to choose a new password."),
    form,
    h("p", {}, h("a", { href: "#/signin" }, "Back to sign in")));
}

// tokenScreen is a page an emailed link opens: opening it uses nothing;
// the token is sent only when the person presses the button.
function tokenScreen(root, ctx, { title, intro, button, formId, resultId, extra = [], run, done }) {
  const token = linkToken();
  const result = h("p", { id: resultId, role: "status", "aria-live": "polite" });
  const form = h("form", { id: formId }, ...extra, h("button", { type: "submit", class: "primary" }, button));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(form, async () => {
      ctx.clearError(form);
      try {
        const message = await run(token);
        result.dataset.ok = "true";
        result.className = "result-ok";
        result.replaceChildren(message, " ", ...done());
        form.hidden = true;
      } catch (err) {
        result.dataset.ok = "false";
        ctx.showError(form, err);
      }
    });
  });
  root.classList.add("narrow");
  root.append(h("h1", {}, title), h("p", {}, intro), form, result);
  if (!token) {
    form.hidden = true;
    result.dataset.ok = "false";
    result.textContent = "This link has no token. Open the link from the email again, or ask for a new one.";
  }
}

export function mountVerify(root, ctx) {
  tokenScreen(root, ctx, {
    title: "Confirm your email",
    intro: "Confirm that this email address is yours.",
    button: "Confirm my email",
    formId: "verify-form",
    resultId: "verify-result",
    run: async (token) => {
      await ctx.gql(VERIFY, { input: { token } });
      await ctx.refreshViewer();
      return "Your email is confirmed.";
    },
    done: () => ctx.viewer()
      ? [h("a", { href: "#/editor", class: "button primary", id: "verify-continue" }, "Start creating")]
      : [h("a", { href: "#/signin", class: "button primary", id: "verify-continue" }, "Sign in to start creating")],
  });
}

export function mountResetPassword(root, ctx) {
  const password = h("input", { id: "reset-password", type: "password", autocomplete: "new-password", required: true, minlength: 8, maxlength: 128 });
  tokenScreen(root, ctx, {
    title: "Choose a new password",
    intro: "Choose a new password of at least 8 characters. Every session will be signed out.",
    button: "Set my new password",
    formId: "reset-form",
    resultId: "reset-result",
    extra: [field("New password", password)],
    run: async (token) => {
      const data = await ctx.gql(RESET, { input: { token, newPassword: password.value } });
      password.value = "";
      await ctx.refreshViewer();
      return data.resetPassword.message;
    },
    done: () => [h("a", { href: "#/signin", class: "button primary" }, "Sign in")],
  });
}

export function mountConfirmEmail(root, ctx) {
  tokenScreen(root, ctx, {
    title: "Confirm your new email",
    intro: "Confirm that you want to use this address for your FastImage account.",
    button: "Confirm my new email",
    formId: "confirm-email-form",
    resultId: "confirm-email-result",
    run: async (token) => {
      const data = await ctx.gql(CONFIRM_EMAIL, { input: { token } });
      await ctx.refreshViewer();
      return `Your email address is now ${data.confirmEmailChange.user.email}.`;
    },
    done: () => [h("a", { href: ctx.viewer() ? "#/editor" : "#/signin", class: "button primary" }, "Continue")],
  });
}
