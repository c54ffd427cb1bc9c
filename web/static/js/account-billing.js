// The account screen's money: the subscription, the purchases with their
// receipts, and the credits ledger.
import { h, when, label, money, notice, busy, confirmDialog, pager } from "./account-ui.js";

const SUB = `query { serverInfo { integrations { payments { enabled } } }
  viewer { id subscription { id planCode status currentPeriodEnd cancelAtPeriodEnd canceledAt
    plan { name credits interval price { amount currency } } } } }`;

const SUB_FIELDS = `id planCode status currentPeriodEnd cancelAtPeriodEnd canceledAt plan { name credits interval price { amount currency } }`;

const IN_FORCE = new Set(["ACTIVE", "TRIALING", "PAST_DUE"]);

// subscription shows the plan, cancels it at period end or resumes it, and
// opens Stripe's billing portal.
export function subscription(ctx, section) {
  const status = h("div", { class: "section-status" });
  const body = h("div", { id: "subscription-body" });
  section.append(h("h2", { text: "Subscription" }), status, body);
  let payments = false;

  async function load() {
    try {
      const d = await ctx.gql(SUB);
      payments = d.serverInfo.integrations.payments.enabled;
      draw(d.viewer?.subscription);
    } catch (err) {
      ctx.showError(status, err);
    }
  }

  function draw(sub) {
    const portal = h("button", { type: "button", id: "billing-portal", class: "secondary", text: "Cards and invoices", disabled: !payments });
    portal.addEventListener("click", async () => {
      ctx.clearError(status);
      try {
        const d = await busy(portal, () => ctx.gql(`mutation($input: CreateBillingPortalSessionInput!) { createBillingPortalSession(input: $input) { url } }`,
          { input: { returnPath: "/account" } }));
        location.assign(d.createBillingPortalSession.url);
      } catch (err) {
        ctx.showError(status, err);
      }
    });
    if (!sub) {
      body.replaceChildren(h("p", {}, "You have no subscription. ", h("a", { href: "#/buy", text: "See the plans" }), "."), h("div", { class: "actions" }, portal));
      return;
    }
    const plan = sub.plan;
    const inForce = IN_FORCE.has(sub.status);
    let line;
    if (!inForce) line = h("span", {}, sub.canceledAt ? h("span", {}, "Ended ", when(sub.canceledAt, { date: true })) : label(sub.status));
    else if (sub.cancelAtPeriodEnd) line = h("span", {}, "Ends ", when(sub.currentPeriodEnd, { date: true }), " (it will not renew)");
    else line = h("span", {}, "Renews ", when(sub.currentPeriodEnd, { date: true }));
    const actions = h("div", { class: "actions" });
    if (inForce && !sub.cancelAtPeriodEnd) {
      const cancel = h("button", { type: "button", id: "cancel-subscription", class: "secondary", text: "Cancel at period end", disabled: !payments });
      cancel.addEventListener("click", async () => {
        const ok = await confirmDialog(ctx, { title: "Cancel your subscription?", body: ["It stops renewing. Your plan, its credits and its limits stay until the end of the period you paid for.", "You can resume it until then."], confirmLabel: "Cancel at period end" });
        if (ok) change(cancel, "cancelSubscription", sub.id, "Your subscription ends with the current period.");
      });
      actions.append(cancel);
    } else if (inForce) {
      const resume = h("button", { type: "button", id: "resume-subscription", text: "Resume", disabled: !payments });
      resume.addEventListener("click", () => change(resume, "resumeSubscription", sub.id, "Your subscription renews again."));
      actions.append(resume);
    }
    actions.append(portal);
    body.replaceChildren(
      h("p", { class: "sub-line", dataset: { status: sub.status, cancelAtPeriodEnd: String(sub.cancelAtPeriodEnd) } },
        h("strong", { text: plan?.name || sub.planCode }), " ", h("span", { class: "badge", text: label(sub.status) }), " · ", line),
      plan ? h("p", { class: "muted small", text: `${plan.credits} credits every ${plan.interval === "YEAR" ? "year" : "month"}, ${money(plan.price)}` }) : null,
      actions);
  }

  async function change(btn, mutation, id, done) {
    ctx.clearError(status);
    try {
      const d = await busy(btn, () => ctx.gql(`mutation($input: ${mutation === "cancelSubscription" ? "CancelSubscriptionInput" : "ResumeSubscriptionInput"}!) {
        ${mutation}(input: $input) { subscription { ${SUB_FIELDS} } } }`, { input: { subscriptionId: id } }));
      draw(d[mutation].subscription);
      notice(status, done);
    } catch (err) {
      ctx.showError(status, err);
    }
  }

  load();
  return (ev) => { if (ev.kind === "SUBSCRIPTION") load(); };
}

const PURCHASES = `query($after: String) { viewer { id purchases(first: 10, after: $after) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { id planCode plan { name } kind credits amount { amount currency } status refundedAmount dispute
    creditsClawedBack creditsOwed periodStart periodEnd receiptUrl paidAt createdAt } } } } }`;

// purchases lists the payments with their receipts.
export function purchases(ctx, section) {
  const status = h("div", { class: "section-status" });
  const list = h("ul", { class: "rows", id: "purchase-list" });
  const count = h("span", { class: "count" });
  section.append(h("h2", {}, "Purchases ", count), status, list);
  const p = pager(ctx, {
    list, errors: status, moreId: "purchases-more", countEl: count, empty: "You have bought nothing yet.",
    load: async (after) => (await ctx.gql(PURCHASES, { after })).viewer.purchases,
    render: (x) => h("li", { class: "purchase row", dataset: { id: x.id, status: x.status } },
      h("div", { class: "row-main" },
        h("strong", { text: x.plan?.name || x.planCode }), " ", h("span", { class: "badge status-" + x.status.toLowerCase(), text: label(x.status) }),
        x.dispute ? h("span", { class: "badge warn", text: "Dispute " + label(x.dispute).toLowerCase() }) : null,
        h("div", { class: "muted small" }, `${x.credits} credits · ${money(x.amount)} · `, when(x.paidAt || x.createdAt),
          x.periodStart ? h("span", {}, " · for ", when(x.periodStart, { date: true }), " – ", when(x.periodEnd, { date: true })) : null),
        x.refundedAmount ? h("div", { class: "small", text: `Refunded ${money({ amount: x.refundedAmount, currency: x.amount.currency })}` }) : null,
        x.creditsClawedBack ? h("div", { class: "small", text: `${x.creditsClawedBack} credits taken back${x.creditsOwed ? `, ${x.creditsOwed} owed` : ""}` }) : null),
      x.receiptUrl ? h("a", { class: "receipt button secondary", href: x.receiptUrl, target: "_blank", rel: "noopener", text: "Receipt" }) : null),
  });
  p.reload();
  return (ev) => { if (ev.kind === "PURCHASE") p.reload(); };
}

const ENTRIES = `query($after: String) { viewer { id credits { balance available held } creditEntries(first: 15, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { id kind amount balanceAfter expiresAt reason createdAt } } } } }`;

// credits shows the balance and pages through the ledger.
export function credits(ctx, section) {
  const status = h("div", { class: "section-status" });
  const balance = h("p", { id: "credits-summary" });
  const list = h("ol", { class: "rows", id: "credit-entries" });
  section.append(h("h2", { text: "Credits" }), balance, status, list);
  function summary(c) {
    balance.replaceChildren(h("strong", { text: `${c.available} credits available` }),
      c.held ? h("span", { class: "muted", text: ` (${c.held} set aside for work in progress)` }) : "", " ",
      h("a", { href: "#/buy", text: "Buy credits" }));
  }
  const p = pager(ctx, {
    list, errors: status, moreId: "credits-more", empty: "No credit changes yet.",
    load: async (after) => {
      const v = (await ctx.gql(ENTRIES, { after })).viewer;
      summary(v.credits);
      return v.creditEntries;
    },
    render: (e) => h("li", { class: "credit-entry row", dataset: { id: e.id, kind: e.kind } },
      h("div", { class: "row-main" }, h("strong", { text: label(e.kind) }),
        h("div", { class: "muted small" }, when(e.createdAt), e.reason ? ` · ${e.reason}` : "",
          e.expiresAt ? h("span", {}, " · expires ", when(e.expiresAt, { date: true })) : null)),
      h("div", { class: "amounts" }, h("span", { class: "amount " + (e.amount < 0 ? "neg" : "pos"), text: (e.amount > 0 ? "+" : "") + e.amount }),
        h("span", { class: "muted small", text: `balance ${e.balanceAfter}` }))),
  });
  p.reload();
  return (ev) => {
    if (ev.kind !== "CREDITS" || !ev.credits) return;
    summary(ev.credits);
    if (ev.cause !== "HOLD" && ev.cause !== "RELEASE") p.reload();
  };
}
