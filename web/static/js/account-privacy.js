// The account screen's privacy rights (export, correction, deletion,
// objections, the requests and their progress live) and the legal documents
// waiting for acceptance.
import { h, field, when, label, bytes, notice, busy, confirmDialog, passwordDialog, pager } from "./account-ui.js";

const REQUEST_FIELDS = `id kind status field value purpose rejectionReason dueAt progress createdAt completedAt
  export { bytes sha256 expiresAt downloadUrl }`;

const REQUESTS = `query($after: String) { viewer { id privacyRequests(first: 10, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { ${REQUEST_FIELDS} } } } } }`;

const ONE_REQUEST = `query($id: ID!) { node(id: $id) { ... on PrivacyRequest { ${REQUEST_FIELDS} } } }`;

// Purposes one may object to, with the checkbox ids the tests use.
const PURPOSES = [
  ["ANALYTICS", "object-analytics", "Product analytics", "Counting which features are used."],
  ["PRODUCT_IMPROVEMENT", "object-product-improvement", "Product improvement", "Using how you use FastImage to improve features."],
  ["MARKETING_EMAIL", "object-marketing-email", "Marketing email", "News and offers by email."],
];

// Requests not yet started may be canceled.
const CANCELABLE = new Set(["RECEIVED", "VERIFIED"]);
const OPEN = new Set(["RECEIVED", "VERIFIED", "IN_PROGRESS"]);

export function privacy(ctx, section, viewer) {
  const status = h("div", { class: "section-status" });
  const list = h("ul", { class: "rows", id: "privacy-requests" });
  const count = h("span", { class: "count" });
  const rows = new Map(); // request id → li

  // Export.
  const exportBtn = h("button", { type: "button", id: "request-export", text: "Request a copy of my data" });
  exportBtn.addEventListener("click", async () => {
    ctx.clearError(status);
    try {
      const d = await busy(exportBtn, () => ctx.gql(`mutation { requestDataExport(input: {}) { request { ${REQUEST_FIELDS} } } }`));
      upsert(d.requestDataExport.request, true);
      notice(status, "Your export is being prepared; its progress shows below, and the download link appears here when it is ready.");
    } catch (err) {
      ctx.showError(status, err);
    }
  });

  // Correction.
  const correction = h("form", { id: "correction-form", class: "stack" },
    h("h3", { text: "Ask for a correction" }),
    h("p", { class: "muted small", text: "For data you cannot change yourself (your name and email you change in Profile above)." }),
    field("Which data", { id: "correction-field", name: "field", required: true, maxlength: 100, placeholder: "e.g. a purchase record" }),
    field("What it should be", { id: "correction-value", name: "value", tag: "textarea", required: true, maxlength: 2000, rows: 2 }),
    field("Note (optional)", { id: "correction-note", name: "note", tag: "textarea", maxlength: 2000, rows: 2 }),
    h("button", { type: "submit", text: "Send the request" }));
  correction.addEventListener("submit", async (e) => {
    e.preventDefault();
    ctx.clearError(status);
    const f = correction.elements;
    const input = { field: f.field.value.trim(), value: f.value.value.trim() };
    if (f.note.value.trim()) input.note = f.note.value.trim();
    try {
      const d = await busy(correction, () => ctx.gql(`mutation($input: RequestCorrectionInput!) { requestCorrection(input: $input) { request { ${REQUEST_FIELDS} } } }`, { input }));
      correction.reset();
      upsert(d.requestCorrection.request, true);
      notice(status, "Your correction request is sent; support answers by its due date.");
    } catch (err) {
      ctx.showError(status, err);
    }
  });

  // Objections: the boxes show the current state, and change it at once.
  const objectionStatus = h("div", { class: "section-status" });
  const boxes = PURPOSES.map(([purpose, id, name, hint]) => {
    const box = h("input", { type: "checkbox", id, dataset: { purpose }, checked: (viewer.objections || []).includes(purpose), "aria-describedby": id + "-hint" });
    box.addEventListener("change", async () => {
      ctx.clearError(objectionStatus);
      const objecting = box.checked;
      const m = objecting ? "objectToProcessing" : "withdrawObjection";
      try {
        const d = await busy(box, () => ctx.gql(`mutation($input: ProcessingObjectionInput!) { ${m}(input: $input) { request { ${REQUEST_FIELDS} } } }`, { input: { purpose } }));
        upsert(d[m].request, true);
        notice(objectionStatus, objecting ? `You object to ${name.toLowerCase()}: it stops now.` : `You no longer object to ${name.toLowerCase()}.`);
      } catch (err) {
        box.checked = !objecting;
        ctx.showError(objectionStatus, err);
      }
    });
    return h("label", { class: "check", for: id }, box, h("span", {}, h("span", { class: "check-name", text: name }), h("small", { class: "hint", id: id + "-hint", text: hint })));
  });
  const objections = h("fieldset", { id: "objections", class: "checks" },
    h("legend", { text: "I object to this processing of my data" }), boxes, objectionStatus);

  // Deletion.
  const deleteBtn = h("button", { type: "button", id: "request-deletion", class: "danger", text: "Delete my account…" });
  deleteBtn.addEventListener("click", async () => {
    ctx.clearError(status);
    const proved = await passwordDialog(ctx, {
      title: "Delete your account?",
      body: [
        h("p", { class: "warning", text: "This deletes your account and everything in it, for good: your works and images, prompts, credits, sessions and API keys." }),
        h("p", { text: "It starts within moments and cannot be undone. Payment and ledger records are kept for accounting, without anything that names you." }),
        h("p", { text: "Want your data first? Request a copy of it and download it before you delete." }),
        h("p", { text: "Enter your password to confirm." }),
      ],
      confirmLabel: "Delete my account",
      danger: true,
    });
    if (!proved) return;
    try {
      const d = await busy(deleteBtn, () => ctx.gql(`mutation { requestAccountDeletion(input: {}) { request { ${REQUEST_FIELDS} } } }`));
      upsert(d.requestAccountDeletion.request, true);
      notice(status, "Your account is being deleted. You will be signed out when it is done.");
    } catch (err) {
      ctx.showError(status, err);
    }
  });

  function row(r) {
    const li = h("li", { class: "privacy-request row", dataset: { id: r.id, kind: r.kind, status: r.status } });
    fill(li, r);
    rows.set(r.id, li);
    return li;
  }

  function fill(li, r) {
    li.dataset.status = r.status;
    const what = r.kind === "OBJECTION" || r.kind === "WITHDRAWAL" ? `${label(r.kind)}: ${label(r.purpose)}`
      : r.kind === "CORRECTION" ? `Correction: ${r.field}` : label(r.kind);
    const parts = [h("strong", { text: what }), " ", h("span", { class: "badge status-" + r.status.toLowerCase(), text: label(r.status) })];
    const meta = h("div", { class: "muted small" }, "Asked ", when(r.createdAt),
      OPEN.has(r.status) ? h("span", {}, " · answered by ", when(r.dueAt, { date: true })) : null,
      r.completedAt ? h("span", {}, " · done ", when(r.completedAt)) : null);
    parts.push(meta);
    if ((r.kind === "EXPORT" || r.kind === "DELETION") && r.status === "IN_PROGRESS") {
      parts.push(h("progress", { class: "request-progress", max: 100, value: r.progress, "aria-label": `${label(r.kind)} progress` }));
    }
    if (r.rejectionReason) parts.push(h("p", { class: "small", text: "Rejected: " + r.rejectionReason }));
    if (r.export) {
      parts.push(h("p", { class: "export-ready" },
        h("a", { class: "export-download button", href: r.export.downloadUrl, download: "", text: `Download (${bytes(r.export.bytes)} ZIP)` }),
        " ", h("span", { class: "muted small" }, "until ", when(r.export.expiresAt)),
        h("small", { class: "sha muted" }, "SHA-256 ", h("code", { text: r.export.sha256 }))));
    } else if (r.kind === "EXPORT" && r.status === "COMPLETED") {
      parts.push(h("p", { class: "muted small", text: "The download has expired: request a new copy." }));
    }
    const main = h("div", { class: "row-main" }, parts);
    const cancel = CANCELABLE.has(r.status) && r.kind !== "OBJECTION" && r.kind !== "WITHDRAWAL"
      ? h("button", { type: "button", class: "cancel-request secondary", text: "Cancel", "aria-label": `Cancel the ${label(r.kind).toLowerCase()} request` }) : null;
    cancel?.addEventListener("click", async () => {
      ctx.clearError(status);
      const ok = await confirmDialog(ctx, { title: "Cancel this request?", body: `Your ${label(r.kind).toLowerCase()} request is withdrawn.`, confirmLabel: "Cancel the request" });
      if (!ok) return;
      try {
        const d = await ctx.gql(`mutation($input: CancelPrivacyRequestInput!) { cancelPrivacyRequest(input: $input) { request { ${REQUEST_FIELDS} } } }`, { input: { requestId: r.id } });
        upsert(d.cancelPrivacyRequest.request);
      } catch (err) {
        ctx.showError(status, err);
      }
    });
    li.replaceChildren(main, cancel || "");
  }

  function upsert(r, isNew = false) {
    const li = rows.get(r.id);
    if (li) fill(li, r);
    else if (isNew || list.children.length < 10) {
      list.prepend(row(r));
      count.textContent = String(Number(count.textContent || 0) + 1);
    }
    list.nextElementSibling?.nextElementSibling?.setAttribute("hidden", ""); // the "no requests" line
  }

  // A live PRIVACY_REQUEST entry: progress is drawn at once; a new status
  // (or a request not listed yet) is read in full, for the download link.
  async function onEvent(ev) {
    if (ev.kind !== "PRIVACY_REQUEST" || !ev.privacyRequestId) return;
    const li = rows.get(ev.privacyRequestId);
    if (li && li.dataset.status === ev.privacyRequestStatus) {
      const bar = li.querySelector("progress");
      if (bar && ev.progress !== null && ev.progress !== undefined) bar.value = ev.progress;
      return;
    }
    try {
      const d = await ctx.gql(ONE_REQUEST, { id: ev.privacyRequestId });
      if (!d.node) return;
      upsert(d.node, !li);
      if (d.node.kind === "EXPORT" && d.node.export) notice(status, "Your data is ready: download it below.");
    } catch (err) {
      ctx.showError(status, err);
    }
  }

  section.append(
    h("h2", { text: "Privacy" }),
    h("p", { class: "muted" }, "Your rights over your data, as the ", h("a", { href: "/privacy", text: "privacy policy" }), " describes them."),
    status,
    h("div", { class: "actions" }, exportBtn),
    h("h3", {}, "Your requests ", count), list,
    h("div", { class: "cols" }, objections, correction),
    h("div", { class: "danger-zone" }, h("h3", { text: "Delete your account" }),
      h("p", { class: "muted small", text: "Deletes your account, works and images for good." }), deleteBtn));
  // The requests, kept up to date from the live feed.
  const p = pager(ctx, {
    list, errors: status, moreId: "privacy-more", countEl: count, empty: "You have made no privacy requests.",
    load: async (after) => {
      const conn = (await ctx.gql(REQUESTS, { after })).viewer.privacyRequests;
      if (!after) rows.clear();
      return conn;
    },
    render: (r) => row(r),
  });
  p.reload();
  return onEvent;
}

const PENDING = `query { viewer { id pendingLegalDocuments { kind version effectiveAt url } } }`;

// legal shows the legal documents in effect that the user has not accepted.
export function legal(ctx, section) {
  const status = h("div", { class: "section-status" });
  const body = h("div", { class: "legal-body" });
  section.append(h("h2", { text: "Legal documents" }), status, body);

  async function load() {
    try {
      const docs = (await ctx.gql(PENDING)).viewer?.pendingLegalDocuments || [];
      draw(docs);
    } catch (err) {
      ctx.showError(status, err);
    }
  }

  function draw(docs) {
    const always = h("p", { class: "muted small" }, "Read them any time: ", h("a", { href: "/privacy", text: "privacy policy" }), " · ", h("a", { href: "/terms", text: "terms of service" }), ".");
    if (!docs.length) {
      body.replaceChildren(h("p", { id: "legal-up-to-date", text: "You have accepted the privacy policy and terms in effect." }), always);
      return;
    }
    const accept = h("button", { type: "button", id: "accept-legal", text: docs.length === 1 ? "I accept it" : "I accept them" });
    accept.addEventListener("click", async () => {
      ctx.clearError(status);
      try {
        const d = await busy(accept, () => ctx.gql(`mutation($input: AcceptLegalDocumentsInput!) { acceptLegalDocuments(input: $input) { pendingLegalDocuments { kind version effectiveAt url } } }`,
          { input: { documents: docs.map((x) => ({ kind: x.kind, version: x.version })) } }));
        draw(d.acceptLegalDocuments.pendingLegalDocuments);
        notice(status, "Thank you: your acceptance is recorded.");
        ctx.refreshViewer?.(); // the shell's reminder goes away
      } catch (err) {
        ctx.showError(status, err);
      }
    });
    body.replaceChildren(
      h("p", { text: "These have changed since you last accepted them. Please read and accept them to go on using FastImage." }),
      h("ul", { id: "pending-legal" }, docs.map((x) => h("li", { class: "pending-doc", dataset: { kind: x.kind, version: x.version } },
        h("a", { href: x.url, target: "_blank", rel: "noopener", text: x.kind === "TERMS" ? "Terms of service" : "Privacy policy" }),
        ` — version ${x.version}, in effect since `, when(x.effectiveAt, { date: true })))),
      h("div", { class: "actions" }, accept), always);
  }
  load();
}
