// Small DOM helpers shared by the account and buy screens: an element
// builder, dates and money as the reader's locale writes them, <dialog>
// confirmations (never window.confirm: tests and screen readers cannot see
// those), the password re-check the API asks for before sensitive changes,
// and a "show more" pager over Relay connections.

// h builds an element. attrs: class, id, text, for, dataset {…}, on {event:
// fn}, and any other attribute or boolean property (hidden, disabled,
// checked, required …). Children are nodes or strings; null/false are
// skipped. Never sets a style attribute (the CSP forbids inline styles).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "for") el.htmlFor = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (v === true) el.setAttribute(k, "");
    else if (k in el && typeof el[k] !== "function" && !k.includes("-")) el[k] = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// field is a labelled input: <div class="field"><label for=id>…</label><input id=id …></div>.
export function field(label, attrs, hint) {
  const input = h(attrs.tag || "input", { ...attrs, tag: undefined });
  const hintEl = hint ? h("small", { class: "hint", id: attrs.id + "-hint", text: hint }) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: attrs.id, text: label }), input, hintEl);
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

// when writes an RFC 3339 instant as a <time> in the reader's locale.
export function when(iso, { date = false } = {}) {
  if (!iso) return h("span", { text: "—" });
  const d = new Date(iso);
  return h("time", { datetime: iso, text: (date ? dateOnly : dateTime).format(d) });
}

// money writes an amount in minor units, e.g. {amount: 999, currency: "usd"}.
export function money(m) {
  if (!m) return "";
  const currency = (m.currency || "usd").toUpperCase();
  let digits = 2;
  try {
    digits = new Intl.NumberFormat(undefined, { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return `${m.amount} ${currency}`;
  }
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(m.amount / 10 ** digits);
}

// bytes writes a size for people.
export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["bytes", "KB", "MB", "GB", "TB"]; // of 1024, as storage is counted
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

// label turns an enum value such as SIGN_IN_FAILED into "Sign in failed".
export function label(value) {
  if (!value) return "";
  const s = String(value).toLowerCase().replaceAll("_", " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// notice shows a status sentence (not an error) in container.
export function notice(container, text) {
  container.replaceChildren(h("p", { class: "notice", role: "status", text }));
}

// busy disables a form's or a button's controls while fn runs.
export async function busy(target, fn) {
  const controls = target instanceof HTMLFormElement ? [...target.elements] : [target];
  const was = controls.map((c) => c.disabled);
  controls.forEach((c) => (c.disabled = true));
  target.setAttribute("aria-busy", "true");
  try {
    return await fn();
  } finally {
    controls.forEach((c, i) => (c.disabled = was[i]));
    target.removeAttribute("aria-busy");
  }
}

// openDialog shows a modal <dialog> built from parts and resolves with the
// value onConfirm returns (a falsy return keeps it open), or null when the
// user cancels (Cancel button or Escape). onConfirm gets {dialog, errors}
// and may throw an ApiError, which is shown inside the dialog.
function openDialog(ctx, { title, body = [], confirmLabel, danger = false, inputs = [], onConfirm }) {
  return new Promise((resolve) => {
    const titleId = "dlg-title-" + Math.random().toString(36).slice(2);
    const errors = h("div", { class: "dialog-errors" });
    const confirm = h("button", { type: "submit", class: "confirm" + (danger ? " danger" : ""), text: confirmLabel });
    const cancel = h("button", { type: "button", class: "cancel secondary", text: "Cancel" });
    const form = h("form", { method: "dialog" }, h("h2", { id: titleId, text: title }), body, inputs, errors,
      h("div", { class: "dialog-actions" }, cancel, confirm));
    const dialog = h("dialog", { class: "acc-dialog", "aria-labelledby": titleId }, form);
    let result = null;
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      ctx.clearError(errors);
      try {
        const v = await busy(form, () => onConfirm({ dialog, errors }));
        if (v) {
          result = v;
          dialog.close();
        }
      } catch (err) {
        ctx.showError(errors, err);
      }
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    // A destructive question starts on Cancel, so Enter does no harm.
    (inputs.length ? dialog.querySelector("input") : danger ? cancel : confirm).focus();
  });
}

// confirmDialog asks a yes/no question; resolves true when confirmed.
export async function confirmDialog(ctx, { title, body, confirmLabel = "Confirm", danger = false }) {
  const paras = (Array.isArray(body) ? body : [body]).map((t) => (t instanceof Node ? t : h("p", { text: t })));
  return (await openDialog(ctx, { title, body: paras, confirmLabel, danger, onConfirm: () => true })) === true;
}

// passwordDialog asks for the password and proves it with confirmPassword;
// resolves true once proved, false when the user gives up. Wrong passwords
// are shown inside the dialog, which stays open.
export async function passwordDialog(ctx, { title = "Confirm your password", body = [], confirmLabel = "Confirm", danger = false } = {}) {
  const id = "dlg-password-" + Math.random().toString(36).slice(2);
  const input = h("input", { id, type: "password", autocomplete: "current-password", required: true, maxlength: 128, class: "dialog-password" });
  const paras = (Array.isArray(body) ? body : [body]).map((t) => (t instanceof Node ? t : h("p", { text: t })));
  const ok = await openDialog(ctx, {
    title, body: paras, confirmLabel, danger,
    inputs: [h("div", { class: "field" }, h("label", { for: id, text: "Password" }), input)],
    onConfirm: async () => {
      await ctx.gql(`mutation($input: ConfirmPasswordInput!) { confirmPassword(input: $input) { confirmedAt } }`,
        { input: { password: input.value } });
      return true;
    },
  });
  return ok === true;
}

// withReauth runs fn; when the API answers REAUTHENTICATION_REQUIRED it asks
// for the password (saying the API's sentence), proves it, and runs fn
// again. Resolves with fn's result, or null when the user gives up.
export async function withReauth(ctx, fn, dialog = {}) {
  try {
    return await fn();
  } catch (err) {
    if (err?.code !== "REAUTHENTICATION_REQUIRED") throw err;
    const ok = await passwordDialog(ctx, { body: [err.message], ...dialog });
    if (!ok) return null;
    return fn();
  }
}

// pager renders a connection page by page into list, with a "Show more"
// button after it. load(after) resolves with the connection ({edges,
// pageInfo, totalCount}); render(node) returns the list item. Returns
// {reload, prepend(node)}.
export function pager(ctx, { list, errors, load, render, empty, moreId, countEl }) {
  const more = h("button", { type: "button", class: "more secondary", id: moreId, text: "Show more", hidden: true });
  const emptyEl = h("p", { class: "empty", text: empty, hidden: true });
  list.after(more, emptyEl);
  let cursor = null;
  let gen = 0;
  async function page(reset) {
    const mine = reset ? ++gen : gen;
    try {
      const conn = await busy(more, () => load(reset ? null : cursor));
      if (mine !== gen) return; // a reload started meanwhile
      if (reset) list.replaceChildren();
      for (const e of conn.edges) list.append(render(e.node));
      cursor = conn.pageInfo.endCursor;
      more.hidden = !conn.pageInfo.hasNextPage;
      emptyEl.hidden = list.children.length > 0;
      if (countEl) countEl.textContent = String(conn.totalCount);
    } catch (err) {
      ctx.showError(errors, err);
    }
  }
  more.addEventListener("click", () => page(false));
  return { reload: () => page(true) };
}

// newKey returns a fresh idempotency key.
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

// hashQuery returns the query of the hash route, e.g. #/buy?checkout=success.
export function hashQuery() {
  const i = location.hash.indexOf("?");
  return new URLSearchParams(i < 0 ? "" : location.hash.slice(i + 1));
}
