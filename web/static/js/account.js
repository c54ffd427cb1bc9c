// The account screen (#/account): profile, sessions, security record, API
// keys, credits, subscription and purchases, privacy rights and legal
// documents. Each part loads its own data, so one failing does not blank
// the others; the parts that change on their own (privacy requests,
// credits, purchases, subscription) follow the live viewerEvents feed.
import { h } from "./account-ui.js";
import { profile, sessions, securityEvents } from "./account-profile.js";
import { apiKeys } from "./account-keys.js";
import { privacy, legal } from "./account-privacy.js";
import { subscription, purchases, credits } from "./account-billing.js";
import { followViewerEvents } from "./account-live.js";

// lastViewerEventSeq is read before any part loads, so the live feed resumes
// from before what they show.
const VIEWER = `query { viewer { id email name emailVerified objections lastViewerEventSeq } }`;

const PARTS = [
  ["profile", "Profile"],
  ["legal", "Legal"],
  ["credits-history", "Credits"],
  ["subscription", "Subscription"],
  ["purchases", "Purchases"],
  ["sessions", "Sessions"],
  ["security-events", "Security"],
  ["api-keys", "API keys"],
  ["privacy", "Privacy"],
];

export function mount(root, ctx) {
  root.classList.add("account-screen");
  const status = h("div", { class: "section-status" });
  root.replaceChildren(h("h1", { text: "Account" }), status);
  const cleanups = [];
  let stopped = false;

  (async () => {
    let viewer;
    try {
      viewer = (await ctx.gql(VIEWER)).viewer;
    } catch (err) {
      ctx.showError(status, err);
      return;
    }
    if (stopped) return;
    if (!viewer) {
      root.append(h("p", {}, "Sign in to see your account. ", h("a", { href: "#/signin", text: "Sign in" })));
      return;
    }
    const sections = Object.fromEntries(PARTS.map(([id, name]) => [id, h("section", { id, class: "card", "aria-label": name })]));
    const toc = h("nav", { class: "acc-toc", "aria-label": "Account sections" },
      PARTS.map(([id, name]) => {
        const b = h("button", { type: "button", class: "link", text: name });
        b.addEventListener("click", () => {
          sections[id].scrollIntoView({ block: "start" });
          sections[id].querySelector("h2")?.focus();
        });
        return b;
      }));
    root.append(toc, ...Object.values(sections));

    const handlers = [];
    profile(ctx, sections.profile, viewer);
    legal(ctx, sections.legal);
    handlers.push(credits(ctx, sections["credits-history"]));
    handlers.push(subscription(ctx, sections.subscription));
    handlers.push(purchases(ctx, sections.purchases));
    cleanups.push(sessions(ctx, sections.sessions));
    cleanups.push(securityEvents(ctx, sections["security-events"]));
    apiKeys(ctx, sections["api-keys"]);
    handlers.push(privacy(ctx, sections.privacy, viewer));
    // Headings take focus from the section buttons, for screen readers.
    for (const s of Object.values(sections)) s.querySelector("h2")?.setAttribute("tabindex", "-1");
    if (stopped) return;

    cleanups.push(followViewerEvents(ctx, viewer.lastViewerEventSeq, (ev) => handlers.forEach((fn) => fn(ev))));
  })();

  return () => {
    stopped = true;
    cleanups.forEach((fn) => typeof fn === "function" && fn());
    document.querySelectorAll("dialog.acc-dialog").forEach((d) => d.close());
  };
}
