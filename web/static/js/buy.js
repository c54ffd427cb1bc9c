// The buy screen (#/buy): credit packs and plans from the public plans
// query. Buying starts a Stripe Checkout and sends the browser there; Stripe
// sends it back to /buy?checkout=success|canceled, which the server
// redirects here (#/buy?checkout=…). Credits arrive only when Stripe
// confirms the payment to the API, so the screen follows the live feed and
// says so when they land.
import { h, money, bytes, busy, newKey, hashQuery } from "./account-ui.js";
import { followViewerEvents } from "./account-live.js";

const PLANS = `query { serverInfo { integrations { payments { enabled message } } }
  plans { code name kind interval credits price { amount currency } storageQuotaBytes runningJobsLimit } }`;

const VIEWER = `query { viewer { id emailVerified lastViewerEventSeq credits { available }
  subscription { planCode status cancelAtPeriodEnd }
  purchases(first: 1) { edges { node { id status credits planCode plan { name } createdAt } } } } }`;

const IN_FORCE = new Set(["ACTIVE", "TRIALING", "PAST_DUE"]);

// Where Stripe sends the browser back: paths on this site (a fragment is
// not allowed there), which the server redirects to this screen.
const SUCCESS_PATH = "/buy?checkout=success";
const CANCEL_PATH = "/buy?checkout=canceled";

export function mount(root, ctx) {
  root.classList.add("buy-screen");
  const status = h("div", { class: "section-status", id: "buy-status" });
  const off = h("div", { id: "payments-off", class: "payments-off", hidden: true });
  const result = h("div", { id: "checkout-result", class: "checkout-result", hidden: true, role: "status" });
  const packs = h("section", { id: "packs", class: "offers", "aria-labelledby": "packs-title" },
    h("h2", { id: "packs-title", text: "Credit packs" }), h("p", { class: "muted", text: "Bought once. Use them whenever you like." }));
  const plans = h("section", { id: "plans", class: "offers", "aria-labelledby": "plans-title" },
    h("h2", { id: "plans-title", text: "Plans" }), h("p", { class: "muted", text: "Credits every period, and more room to work, until you cancel." }));
  const packGrid = h("div", { class: "offer-grid" });
  const planGrid = h("div", { class: "offer-grid" });
  packs.append(packGrid);
  plans.append(planGrid);
  root.replaceChildren(h("h1", { text: "Buy credits" }), result, off, status, packs, plans,
    h("p", { class: "muted small" }, "Payments are handled by Stripe; we never see your card number. See the ",
      h("a", { href: "/terms", text: "terms" }), " and the ", h("a", { href: "/privacy", text: "privacy policy" }), "."));

  const keys = new Map(); // plan code → idempotency key, so a retry reuses the same checkout
  let viewer = null;
  let paymentsOn = true;
  let stopLive = () => {};
  let stopped = false;

  function showOff(sentence, code = "PAYMENTS_DISABLED") {
    paymentsOn = false;
    off.replaceChildren(h("p", { class: "error", role: "alert", dataset: { code }, text: sentence }));
    off.hidden = false;
    root.querySelectorAll("button.buy").forEach((b) => (b.disabled = true));
  }

  function card(p) {
    const isPlan = p.kind === "SUBSCRIPTION";
    const per = isPlan ? (p.interval === "YEAR" ? " / year" : " / month") : "";
    const extras = [];
    if (p.storageQuotaBytes) extras.push(`${bytes(p.storageQuotaBytes)} of storage`);
    if (p.runningJobsLimit) extras.push(`${p.runningJobsLimit} generations at once`);
    const action = viewer
      ? h("button", { type: "button", class: "buy", text: isPlan ? "Subscribe" : "Buy", disabled: !paymentsOn, "aria-label": `${isPlan ? "Subscribe to" : "Buy"} ${p.name}` })
      : h("a", { class: "buy button", href: "#/signin", text: "Sign in to buy" });
    if (viewer) action.addEventListener("click", () => buy(p, action));
    const current = isPlan && viewer?.subscription && IN_FORCE.has(viewer.subscription.status) && viewer.subscription.planCode === p.code;
    return h("article", { class: (isPlan ? "plan" : "pack") + " offer", dataset: { code: p.code } },
      h("h3", { text: p.name }),
      h("p", { class: "price" }, h("strong", { text: money(p.price) }), per),
      h("p", { class: "credits", text: `${p.credits.toLocaleString()} credits${isPlan ? per.replace(" / ", " a ") : ""}` }),
      extras.length ? h("ul", { class: "extras" }, extras.map((x) => h("li", { text: x }))) : null,
      current ? h("p", { class: "badge ok", text: "Your plan" }) : null,
      action);
  }

  async function buy(p, btn) {
    ctx.clearError(status);
    if (!keys.has(p.code)) keys.set(p.code, newKey());
    try {
      const d = await busy(btn, () => ctx.gql(`mutation($input: CreateCheckoutSessionInput!) { createCheckoutSession(input: $input) { url } }`,
        { input: { planCode: p.code, idempotencyKey: keys.get(p.code), successPath: SUCCESS_PATH, cancelPath: CANCEL_PATH } }));
      btn.disabled = true; // leaving for Checkout
      location.assign(d.createCheckoutSession.url);
    } catch (err) {
      if (err?.code === "PAYMENTS_DISABLED") return showOff(err.message);
      // The checkout of this key is over (paid, expired): the next try is a new one.
      if (err?.code === "CONFLICT") keys.delete(p.code);
      ctx.showError(status, err);
    }
  }

  // After Checkout: say what happens, and when the credits land.
  function checkoutReturn(latest) {
    const q = hashQuery();
    const state = q.get("checkout");
    if (state === "canceled") {
      result.replaceChildren(h("p", { text: "Checkout canceled: nothing was charged." }));
      result.dataset.state = "canceled";
      result.hidden = false;
      return false;
    }
    if (state !== "success") return false;
    result.dataset.state = "waiting";
    result.replaceChildren(h("p", {}, h("strong", { text: "Thank you for your purchase!" }),
      " Stripe is confirming the payment; your credits arrive here as soon as it does. You can keep using FastImage meanwhile."));
    result.hidden = false;
    if (latest?.status === "PAID" && Date.now() - new Date(latest.createdAt) < 3600e3) paid(latest.credits, null);
    return true;
  }

  function paid(credits, available) {
    result.dataset.state = "paid";
    const parts = [h("strong", { text: "Payment confirmed." }), " "];
    if (credits) parts.push(`${credits.toLocaleString()} credits are yours`);
    if (available !== null && available !== undefined) parts.push(`; you now have ${available.toLocaleString()} available`);
    parts.push(". ", h("a", { href: "#/editor", text: "Start creating" }));
    result.replaceChildren(h("p", {}, parts));
  }

  (async () => {
    try {
      const [pd, vd] = await Promise.all([ctx.gql(PLANS), ctx.gql(VIEWER).catch(() => ({ viewer: null }))]);
      if (stopped) return;
      viewer = vd.viewer;
      paymentsOn = pd.serverInfo.integrations.payments.enabled;
      for (const p of pd.plans) (p.kind === "SUBSCRIPTION" ? planGrid : packGrid).append(card(p));
      packs.hidden = !packGrid.children.length;
      plans.hidden = !planGrid.children.length;
      if (!paymentsOn) showOff(pd.serverInfo.integrations.payments.message || "Payments are not enabled on this server.");
      const latest = viewer?.purchases?.edges?.[0]?.node;
      const waiting = checkoutReturn(latest);
      if (viewer && waiting) {
        stopLive = followViewerEvents(ctx, viewer.lastViewerEventSeq, (ev) => {
          if (ev.kind === "PURCHASE" && ev.purchaseStatus === "PAID" && result.dataset.state !== "paid") paid(null, null);
          if (ev.kind === "CREDITS" && (ev.cause === "PURCHASE" || ev.cause === "SUBSCRIPTION_GRANT") && ev.credits) {
            paid(null, ev.credits.available);
          }
          if (ev.kind === "PURCHASE" && ev.purchaseStatus === "FAILED") {
            result.dataset.state = "failed";
            result.replaceChildren(h("p", { class: "error", role: "alert", dataset: { code: "PAYMENT_FAILED" }, text: "The payment failed, so nothing was charged and no credits were added. You can try again." }));
          }
        });
      }
    } catch (err) {
      ctx.showError(status, err);
    }
  })();

  return () => {
    stopped = true;
    stopLive();
  };
}
