// The editor's shell: who is signed in, the router, the navigation, the
// credits badge and the live status. Each screen is a module that exports
// mount(root, ctx) and may return an unmount function.

import { gql, gqlUpload, showError, clearError, ApiError } from "./api.js";
import * as live from "./live.js";

const VIEWER_QUERY = `query Viewer {
  viewer { id email name emailVerified role status lastViewerEventSeq
    pendingLegalDocuments { kind version url effectiveAt inEffect } }
}`;
const CREDITS_QUERY = `query Credits { viewer { credits { balance available held } } }`;
const VIEWER_EVENTS = `subscription ViewerEvents($afterSeq: Int) {
  viewerEvents(afterSeq: $afterSeq) {
    seq kind generationId workId status
    credits { balance available held } cause
    purchaseId purchaseStatus subscriptionId subscriptionStatus planCode cancelAtPeriodEnd
    privacyRequestId privacyRequestStatus progress createdAt
  }
}`;

// Hash routes; `auth` ones need a signed-in user.
const ROUTES = {
  "/signin": { load: () => import("./auth.js"), fn: "mountSignIn", title: "Sign in" },
  "/signup": { load: () => import("./auth.js"), fn: "mountSignUp", title: "Sign up" },
  "/reset": { load: () => import("./auth.js"), fn: "mountResetRequest", title: "Reset your password" },
  "/editor": { load: () => import("./editor.js"), fn: "mount", title: "Editor", auth: true },
  "/works": { load: () => import("./works.js"), fn: "mount", title: "My Works", auth: true },
  "/works/bin": { load: () => import("./works.js"), fn: "mountBin", title: "Bin", auth: true },
  "/account": { load: () => import("./account.js"), fn: "mount", title: "Account", auth: true },
  "/buy": { load: () => import("./buy.js"), fn: "mount", title: "Buy credits", auth: true },
};

// Paths emailed links open (the server serves this page at each).
const LINK_ROUTES = {
  "/verify-email": { load: () => import("./auth.js"), fn: "mountVerify", title: "Confirm your email" },
  "/reset-password": { load: () => import("./auth.js"), fn: "mountResetPassword", title: "Choose a new password" },
  "/confirm-email": { load: () => import("./auth.js"), fn: "mountConfirmEmail", title: "Confirm your new email" },
};

const $ = (id) => document.getElementById(id);

let viewer = null;
let credits = null;
let unmount = null;
let renderSeq = 0;
let stopFeed = null;
let firstRender = true;
const creditListeners = new Set();
const feedListeners = new Set();

function currentRoute() {
  const hash = location.hash.replace(/^#/, "");
  if (!hash && LINK_ROUTES[location.pathname]) return { key: location.pathname, ...LINK_ROUTES[location.pathname] };
  const key = hash.split("?")[0] || (viewer ? "/editor" : "/signin");
  if (ROUTES[key]) return { key, ...ROUTES[key] };
  return { key: "/editor", ...ROUTES["/editor"] };
}

// navigate goes to a hash route ("#/works") or a path; from an email-link
// path the address goes back to / so the link is not reopened.
function navigate(to) {
  if (to.startsWith("#")) {
    if (location.pathname !== "/") {
      history.pushState(null, "", "/" + to);
      render();
    } else if (location.hash === to) {
      render();
    } else {
      location.hash = to;
    }
    return;
  }
  location.assign(to);
}

function setCredits(c) {
  if (!c) return;
  credits = c;
  const el = $("credits");
  el.dataset.balance = String(c.balance);
  el.textContent = `${c.balance} credit${c.balance === 1 ? "" : "s"}` + (c.held > 0 ? ` (${c.held} held)` : "");
  el.title = `${c.available} available now`;
  el.hidden = false;
  for (const fn of creditListeners) fn(c);
}

function setLiveStatus(state) {
  const el = $("live-status");
  el.dataset.state = state;
  const text = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" }[state] || state;
  el.textContent = text;
  el.title = state === "live" ? "Live updates are on." : "Live updates are paused; they catch up when the connection is back.";
  el.hidden = !viewer;
}

async function loadViewer() {
  try {
    const data = await gql(VIEWER_QUERY);
    viewer = data.viewer;
  } catch (err) {
    // A session that no longer works reads as signed out; sign-in replaces it.
    if (err instanceof ApiError && (err.code === "UNAUTHENTICATED" || err.code === "ACCOUNT_SUSPENDED")) viewer = null;
    else throw err;
  }
  return viewer;
}

async function loadCredits() {
  if (!viewer) return null;
  try {
    const data = await gql(CREDITS_QUERY);
    if (data.viewer) setCredits(data.viewer.credits);
  } catch {
    $("credits").hidden = true; // e.g. not verified yet: no credits to show
  }
  return credits;
}

function startFeed() {
  if (stopFeed || !viewer) return;
  live.start();
  stopFeed = live.followSeq(VIEWER_EVENTS, "viewerEvents", {}, viewer.lastViewerEventSeq ?? null, {
    onEvent(ev) {
      if (ev.kind === "CREDITS" && ev.credits) setCredits(ev.credits);
      // Verified in another tab: the bonus arrives here first.
      if (ev.cause === "SIGNUP_BONUS" && viewer && !viewer.emailVerified) ctx.refreshViewer();
      for (const fn of feedListeners) fn(ev);
    },
    error(err) {
      stopFeed = null;
      console.info("viewerEvents stopped:", err.code, err.message);
    },
    complete() { stopFeed = null; },
  });
}

function stopLive() {
  if (stopFeed) stopFeed();
  stopFeed = null;
  live.stop();
}

function paintShell() {
  const signedIn = !!viewer;
  $("nav").hidden = !signedIn;
  $("signout").hidden = !signedIn;
  $("credits").hidden = !signedIn || !credits;
  $("live-status").hidden = !signedIn;
  const route = currentRoute();
  for (const a of $("nav").querySelectorAll("a")) {
    const target = a.getAttribute("href").slice(1);
    const current = target === route.key || (target === "/works" && route.key === "/works/bin");
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  paintBanner();
}

// paintBanner reminds an unverified user to verify, and anyone with legal
// documents to accept where to do it.
function paintBanner() {
  let banner = $("banner");
  if (!viewer || (viewer.emailVerified && !(viewer.pendingLegalDocuments || []).length)) {
    if (banner) banner.remove();
    return;
  }
  if (!banner) {
    banner = document.createElement("div");
    banner.id = "banner";
    banner.className = "panel";
    $("main").prepend(banner);
  }
  banner.replaceChildren();
  if (!viewer.emailVerified) {
    const p = document.createElement("p");
    p.textContent = `Confirm your email address to get your free credits and start generating: open the link we sent to ${viewer.email}. `;
    const again = document.createElement("button");
    again.type = "button";
    again.id = "resend-verification";
    again.textContent = "Send the link again";
    again.addEventListener("click", async () => {
      again.disabled = true;
      try {
        const data = await gql(`mutation { resendVerification(input: {}) { message } }`);
        clearError(banner);
        p.textContent = data.resendVerification.message + " ";
        p.append(again);
      } catch (err) {
        showError(banner, err);
      } finally {
        again.disabled = false;
      }
    });
    p.append(again);
    banner.append(p);
  }
  if ((viewer.pendingLegalDocuments || []).length) {
    const p = document.createElement("p");
    p.append("We updated our legal documents. ");
    const a = document.createElement("a");
    a.href = "#/account";
    a.textContent = "Review and accept them";
    p.append(a, ".");
    banner.append(p);
  }
}

const ctx = {
  gql,
  gqlUpload,
  showError,
  clearError,
  live,
  navigate,
  viewer: () => viewer,
  credits: () => credits,
  async refreshViewer() {
    await loadViewer();
    if (viewer) {
      await loadCredits();
      startFeed();
    }
    paintShell();
    return viewer;
  },
  // signedIn is called by the sign-in screen once the cookie is set.
  async signedIn() {
    await ctx.refreshViewer();
    navigate(sessionStorage.getItem("fastimage.after-signin") || "#/editor");
    sessionStorage.removeItem("fastimage.after-signin");
  },
  signedOut,
  setCredits,
  // onCredits calls fn on every change of the credits; returns a stop function.
  onCredits(fn) { creditListeners.add(fn); return () => creditListeners.delete(fn); },
  // onViewerEvent calls fn with every viewerEvents entry; returns a stop function.
  onViewerEvent(fn) { feedListeners.add(fn); return () => feedListeners.delete(fn); },
};

function signedOut() {
  stopLive();
  viewer = null;
  credits = null;
  paintShell();
  navigate("#/signin");
}

async function render() {
  const seq = ++renderSeq;
  let route = currentRoute();
  if (route.auth && !viewer) {
    sessionStorage.setItem("fastimage.after-signin", "#" + route.key);
    if (location.hash !== "#/signin") {
      location.hash = "#/signin";
      return;
    }
    route = { key: "/signin", ...ROUTES["/signin"] };
  }
  if (viewer && (route.key === "/signin" || route.key === "/signup")) {
    navigate("#/editor");
    return;
  }
  let mod;
  try {
    mod = await route.load();
  } catch (err) {
    showError($("view"), new ApiError("LOAD_FAILED", "This page could not be loaded. Check your connection and reload."));
    return;
  }
  if (seq !== renderSeq) return;
  if (unmount) {
    try { unmount(); } catch (err) { console.info("unmount:", err); }
    unmount = null;
  }
  const old = $("view");
  const root = document.createElement("section");
  root.id = "view";
  root.dataset.route = route.key;
  old.replaceWith(root);
  document.title = `${route.title} · FastImage`;
  paintShell();
  const result = mod[route.fn](root, ctx);
  unmount = typeof result === "function" ? result : null;
  if (!firstRender) {
    const h = root.querySelector("h1");
    if (h) {
      h.tabIndex = -1;
      h.focus({ preventScroll: false });
    }
  }
  firstRender = false;
}

async function boot() {
  live.onStatus(setLiveStatus);
  live.onSignedOut(() => signedOut());
  $("signout").addEventListener("click", async () => {
    $("signout").disabled = true;
    try {
      await gql(`mutation { signOut(input: {}) { clientMutationId } }`);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === "UNAUTHENTICATED")) {
        showError($("view"), err);
        $("signout").disabled = false;
        return;
      }
    }
    $("signout").disabled = false;
    signedOut();
  });
  addEventListener("hashchange", render);
  addEventListener("popstate", render);
  try {
    await ctx.refreshViewer();
  } catch (err) {
    $("boot").hidden = true;
    showError($("view"), err);
    return;
  }
  $("boot").hidden = true;
  await render();
}

boot();
