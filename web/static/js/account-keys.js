// The account screen's API keys: make one (its secret is shown once),
// list them, revoke one.
import { h, field, when, label, notice, busy, confirmDialog, withReauth } from "./account-ui.js";

const SCOPES = [
  ["WORKS_READ", "Read works and generations"],
  ["WORKS_WRITE", "Upload, rename and delete works"],
  ["GENERATE", "Generate images (spends credits)"],
  ["CREDITS_READ", "Read credits and purchases"],
  ["EVENTS_READ", "Follow live events"],
  ["WEBHOOKS", "Manage webhooks"],
];

const EXPIRY = [
  ["", "Never (until revoked)"],
  ["30", "In 30 days"],
  ["90", "In 90 days"],
  ["365", "In a year"],
];

const KEYS = `query { viewer { id apiKeys { id name prefix scopes createdAt lastUsedAt expiresAt } } }`;

export function apiKeys(ctx, section) {
  const status = h("div", { class: "section-status" });
  const list = h("ul", { class: "rows", id: "key-list" });
  const empty = h("p", { class: "empty", text: "You have no API keys.", hidden: true });

  const scopes = h("fieldset", { class: "checks" }, h("legend", { text: "What the key may do" }),
    SCOPES.map(([value, text]) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "scope", value, id: "key-scope-" + value.toLowerCase().replaceAll("_", "-"), checked: value.endsWith("_READ") }),
      " ", text)));
  const expiry = h("select", { id: "key-expiry", name: "expiry" }, EXPIRY.map(([v, t]) => h("option", { value: v, text: t })));
  const form = h("form", { id: "key-form", class: "stack" },
    h("h3", { text: "New key" }),
    field("Name", { id: "key-name", name: "name", required: true, maxlength: 100, placeholder: "e.g. my-app" }, "To tell your keys apart."),
    scopes,
    h("div", { class: "field" }, h("label", { for: "key-expiry", text: "Expires" }), expiry),
    h("button", { type: "submit", id: "key-submit", text: "Create key" }));

  const secretBox = h("div", { id: "key-secret-box", class: "secret-box", hidden: true });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    ctx.clearError(status);
    const chosen = [...form.querySelectorAll("input[name=scope]:checked")].map((c) => c.value);
    const input = { name: form.elements.name.value.trim(), scopes: chosen };
    if (expiry.value) input.expiresAt = new Date(Date.now() + Number(expiry.value) * 86400e3).toISOString();
    try {
      const d = await busy(form, () => withReauth(ctx,
        () => ctx.gql(`mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id name } } }`, { input }),
        { title: "Confirm your password", confirmLabel: "Confirm and create the key" }));
      if (!d) return; // gave up at the password
      form.reset();
      showSecret(d.createApiKey.apiKey.name, d.createApiKey.secret);
      load();
    } catch (err) {
      ctx.showError(status, err);
    }
  });

  function showSecret(name, secret) {
    const code = h("code", { id: "key-secret", text: secret });
    const copy = h("button", { type: "button", id: "key-copy", text: "Copy" });
    const done = h("button", { type: "button", class: "secondary", id: "key-secret-done", text: "I stored it" });
    const copied = h("span", { class: "muted small", role: "status" });
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(secret);
        copied.textContent = "Copied.";
      } catch {
        // No clipboard (an insecure origin, or denied): select it for Ctrl+C.
        getSelection().selectAllChildren(code);
        copied.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
      }
    });
    done.addEventListener("click", () => {
      secretBox.hidden = true;
      secretBox.replaceChildren();
    });
    secretBox.replaceChildren(
      h("p", {}, h("strong", { text: `Your new key “${name}”` }), " — copy it now: it is shown this once, and we keep only its hash."),
      h("div", { class: "secret-line" }, code, copy), copied, h("div", { class: "actions" }, done));
    secretBox.hidden = false;
    copy.focus();
  }

  async function load() {
    try {
      const d = await ctx.gql(KEYS);
      const keys = d.viewer?.apiKeys || [];
      list.replaceChildren(...keys.map(row));
      empty.hidden = keys.length > 0;
    } catch (err) {
      ctx.showError(status, err);
    }
  }

  function row(k) {
    const expired = k.expiresAt && new Date(k.expiresAt) <= new Date();
    const revoke = h("button", { type: "button", class: "revoke secondary", text: "Revoke", "aria-label": `Revoke the key ${k.name}` });
    revoke.addEventListener("click", async () => {
      ctx.clearError(status);
      const ok = await confirmDialog(ctx, { title: `Revoke “${k.name}”?`, body: "Apps using this key stop working at once. This cannot be undone.", confirmLabel: "Revoke the key", danger: true });
      if (!ok) return;
      try {
        await ctx.gql(`mutation($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) { revokedApiKeyId } }`, { input: { apiKeyId: k.id } });
        notice(status, `The key “${k.name}” is revoked.`);
        load();
      } catch (err) {
        ctx.showError(status, err);
      }
    });
    return h("li", { class: "api-key row", dataset: { id: k.id } },
      h("div", { class: "row-main" },
        h("strong", { class: "key-name", text: k.name }), " ", h("code", { class: "key-prefix", text: k.prefix + "…" }),
        expired ? h("span", { class: "badge warn", text: "Expired" }) : null,
        h("div", { class: "muted small", text: k.scopes.map(label).join(", ") }),
        h("div", { class: "muted small" }, "Made ", when(k.createdAt), " · last used ", k.lastUsedAt ? when(k.lastUsedAt) : "never",
          " · ", k.expiresAt ? h("span", {}, expired ? "expired " : "expires ", when(k.expiresAt)) : "never expires")),
      revoke);
  }

  section.append(h("h2", { text: "API keys" }),
    h("p", { class: "muted", text: "Keys let your own apps use FastImage on your behalf, within the scopes you give them. Making one needs your password." }),
    status, secretBox, list, empty, form);
  load();
}
