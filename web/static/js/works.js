// My Works: a grid of the user's works, newest first, paged with "Load
// more"; open, rename in place, download, delete (to the bin). The bin
// lists deleted works with restore, and empties.

import { h } from "./dom.js";

const PAGE = 24;
const WORK_FIELDS = `id kind title prompt status createdAt deletedAt restorableUntil
  images { id role width height contentType url thumbnailUrl(size: 256) }`;
const LIST = `query Works($first: Int!, $after: String, $filter: WorkFilter) {
  viewer { works(first: $first, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { ${WORK_FIELDS} } }
  } }
}`;
const RENAME = `mutation Rename($input: RenameWorkInput!) { renameWork(input: $input) { work { id title } } }`;
const DELETE = `mutation Delete($input: DeleteWorksInput!) { deleteWorks(input: $input) { deletedWorkIds restorableUntil } }`;
const RESTORE = `mutation Restore($input: RestoreWorksInput!) { restoreWorks(input: $input) { works { id } } }`;
const EMPTY_BIN = `mutation EmptyBin { emptyBin(input: {}) { purgedWorkIds more } }`;

const KIND_TEXT = { UPLOAD: "Upload", GENERATION: "Generated", EDIT: "Edit" };
const STATUS_TEXT = { QUEUED: "Queued", RUNNING: "Being made", FAILED: "Failed", CANCELED: "Canceled" };

export function mount(root, ctx) {
  return mountList(root, ctx, false);
}

export function mountBin(root, ctx) {
  return mountList(root, ctx, true);
}

function mountList(root, ctx, inBin) {
  let after = null;
  let total = 0;
  const grid = h("div", { id: "works-grid", "aria-live": "polite", "aria-busy": "true" });
  const count = h("p", { id: "works-count", class: "muted", role: "status" });
  const more = h("button", { id: "load-more", type: "button", hidden: true }, "Load more");
  const search = h("input", { id: "works-search", type: "search", placeholder: "Title or prompt", maxlength: 200 });
  const status = h("div", { id: "works-status" });
  const tabs = h("nav", { class: "tabs", "aria-label": "My Works" },
    h("a", { href: "#/works", class: "button", "aria-current": inBin ? null : "page" }, "My Works"),
    h("a", { href: "#/works/bin", class: "button", "aria-current": inBin ? "page" : null }, "Bin"));
  const header = [h("h1", {}, inBin ? "Bin" : "My Works"), tabs];
  if (inBin) {
    const empty = h("button", { id: "empty-bin", type: "button", class: "danger" }, "Empty the bin");
    empty.addEventListener("click", () => confirmDialog(root,
      "Erase every work in the bin now? This cannot be undone.", "Erase them", async () => {
        let purged = 0;
        for (let i = 0; i < 50; i++) { // emptyBin erases up to 100 per call
          const d = await ctx.gql(EMPTY_BIN);
          purged += d.emptyBin.purgedWorkIds.length;
          if (!d.emptyBin.more) break;
        }
        notice(status, `${purged} work${purged === 1 ? "" : "s"} erased.`);
        reload();
      }, ctx));
    header.push(h("p", { class: "muted" }, "Deleted works stay here until the date shown, then they are erased."), h("div", { class: "row" }, empty));
  } else {
    header.push(h("form", { id: "works-search-form", role: "search" }, h("label", {}, h("span", {}, "Search"), search)));
  }
  root.append(...header, status, count, grid, h("div", { class: "row" }, more));

  async function load(reset) {
    if (reset) {
      after = null;
      grid.replaceChildren();
    }
    grid.setAttribute("aria-busy", "true");
    more.disabled = true;
    ctx.clearError(status);
    try {
      const filter = inBin ? { inBin: true } : (search.value.trim() ? { query: search.value.trim() } : null);
      const d = await ctx.gql(LIST, { first: PAGE, after, filter });
      const conn = d.viewer.works;
      total = conn.totalCount;
      for (const e of conn.edges) grid.append(card(e.node));
      after = conn.pageInfo.endCursor;
      more.hidden = !conn.pageInfo.hasNextPage;
      paintCount();
    } catch (err) {
      ctx.showError(status, err);
    } finally {
      grid.setAttribute("aria-busy", "false");
      more.disabled = false;
    }
  }
  const reload = () => load(true);

  function paintCount() {
    const shown = grid.querySelectorAll(".work").length;
    if (total === 0) count.textContent = inBin ? "The bin is empty." : "No works yet. Make one in the editor.";
    else count.textContent = `${shown} of ${total} work${total === 1 ? "" : "s"}`;
  }

  function remove(cardEl) {
    cardEl.remove();
    total = Math.max(0, total - 1);
    paintCount();
  }

  function card(w) {
    // Previews are deleted when a generation ends: never show one.
    const out = (w.images || []).find((i) => i.role === "OUTPUT") || (w.images || []).find((i) => i.role === "SOURCE");
    const titleText = w.title || w.prompt || KIND_TEXT[w.kind] || "Untitled";
    const title = h("p", { class: "work-title" }, titleText);
    const thumb = h("div", { class: "thumb" },
      out ? h("img", { src: out.thumbnailUrl, alt: titleText, loading: "lazy", width: 256, height: 256 })
        : h("span", { class: "muted small" }, STATUS_TEXT[w.status] || "No image"));
    const meta = h("p", { class: "muted small" }, `${KIND_TEXT[w.kind] || w.kind} · ${new Date(w.createdAt).toLocaleDateString()}`,
      STATUS_TEXT[w.status] ? ` · ${STATUS_TEXT[w.status]}` : "",
      inBin && w.restorableUntil ? ` · restorable until ${new Date(w.restorableUntil).toLocaleDateString()}` : "");
    const actions = h("div", { class: "actions" });
    const el = h("article", { class: "work", dataset: { id: w.id, status: w.status } }, thumb, h("div", { class: "body" }, title, meta, actions));

    if (inBin) {
      const restore = h("button", { type: "button", class: "restore" }, "Restore");
      restore.addEventListener("click", async () => {
        restore.disabled = true;
        try {
          await ctx.gql(RESTORE, { input: { workIds: [w.id] } });
          remove(el);
          notice(status, `“${titleText}” is back in My Works.`);
        } catch (err) {
          ctx.showError(status, err);
          restore.disabled = false;
        }
      });
      actions.append(restore);
      return el;
    }

    const open = h("button", { type: "button", class: "open" }, "Open");
    open.addEventListener("click", () => openDialog(root, w, out, titleText, ctx));
    const rename = h("button", { type: "button", class: "rename" }, "Rename");
    rename.addEventListener("click", () => startRename(w, title, rename, ctx, status));
    const del = h("button", { type: "button", class: "delete danger" }, "Delete");
    del.addEventListener("click", async () => {
      del.disabled = true;
      try {
        const d = await ctx.gql(DELETE, { input: { workIds: [w.id] } });
        remove(el);
        const until = new Date(d.deleteWorks.restorableUntil).toLocaleDateString();
        notice(status, `“${titleText}” moved to the bin; you can restore it until ${until}.`);
      } catch (err) {
        ctx.showError(status, err);
        del.disabled = false;
      }
    });
    actions.append(open, rename);
    if (out) actions.append(h("a", { class: "download button", href: out.url, download: fileName(titleText, out) }, "Download"));
    actions.append(del);
    return el;
  }

  more.addEventListener("click", () => load(false));
  let searchTimer = 0;
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(reload, 300);
  });
  const form = root.querySelector("#works-search-form");
  if (form) form.addEventListener("submit", (e) => { e.preventDefault(); reload(); });

  // A generation that ends changes its work's card: reload the first page
  // when a work this page does not show yet, or shows as unfinished, ends.
  const stop = ctx.onViewerEvent((ev) => {
    if (inBin || ev.kind !== "GENERATION" || !ev.workId) return;
    const shown = grid.querySelector(`.work[data-id="${CSS.escape(ev.workId)}"]`);
    if (!shown || shown.dataset.status !== ev.status) reload();
  });

  load(true);
  return () => {
    stop();
    clearTimeout(searchTimer);
  };
}

function fileName(title, img) {
  const ext = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp" }[img.contentType] || "png";
  return `${title.replace(/[^\p{L}\p{N} _-]+/gu, "").trim().slice(0, 60) || "fastimage"}.${ext}`;
}

function notice(container, text) {
  for (const el of container.querySelectorAll(".notice")) el.remove();
  container.append(h("p", { class: "notice", role: "status" }, text));
}

// startRename swaps the title for an input: Enter or Save renames, Escape
// or Cancel puts the title back.
function startRename(w, titleEl, button, ctx, status) {
  if (titleEl.hidden) return;
  const input = h("input", { class: "rename-input", type: "text", value: w.title, maxlength: 200, "aria-label": "New title" });
  const save = h("button", { type: "submit", class: "primary save" }, "Save");
  const cancel = h("button", { type: "button", class: "cancel" }, "Cancel");
  const form = h("form", { class: "rename-form" }, input, h("div", { class: "row" }, save, cancel));
  const done = () => {
    form.remove();
    titleEl.hidden = false;
    button.disabled = false;
    button.focus();
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    save.disabled = true;
    try {
      const d = await ctx.gql(RENAME, { input: { workId: w.id, title: input.value } });
      w.title = d.renameWork.work.title;
      titleEl.textContent = w.title || w.prompt || "Untitled";
      done();
    } catch (err) {
      ctx.showError(form, err);
      save.disabled = false;
    }
  });
  cancel.addEventListener("click", done);
  input.addEventListener("keydown", (e) => { if (e.key === "Escape") { e.preventDefault(); done(); } });
  titleEl.hidden = true;
  button.disabled = true;
  titleEl.after(form);
  input.focus();
  input.select();
}

// openDialog shows a work large, with its prompt, a download link and a way
// to edit it in the editor.
function openDialog(root, w, img, titleText, ctx) {
  const close = h("button", { type: "button", class: "close" }, "Close");
  const dialog = h("dialog", { class: "work-dialog", "aria-label": titleText },
    h("h2", {}, titleText),
    img ? h("img", { src: img.url, alt: titleText }) : h("p", { class: "muted" }, "No image yet."),
    w.prompt ? h("p", {}, w.prompt) : null,
    h("div", { class: "row" },
      img ? h("a", { class: "download button", href: img.url, download: fileName(titleText, img) }, "Download") : null,
      img ? h("a", { class: "button primary edit", href: `#/editor?source=${encodeURIComponent(w.id)}` }, "Edit this image") : null,
      close));
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  dialog.querySelectorAll("a.edit").forEach((a) => a.addEventListener("click", () => dialog.close()));
  root.append(dialog);
  dialog.showModal();
  void ctx;
}

// confirmDialog asks before something that cannot be undone.
function confirmDialog(root, question, action, run, ctx) {
  const ok = h("button", { type: "button", class: "confirm danger" }, action);
  const cancel = h("button", { type: "button", class: "cancel" }, "Keep them");
  const body = h("div", {}, h("p", {}, question), h("div", { class: "row" }, ok, cancel));
  const dialog = h("dialog", { class: "confirm-dialog" }, body);
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  ok.addEventListener("click", async () => {
    ok.disabled = true;
    try {
      await run();
      dialog.close();
    } catch (err) {
      ctx.showError(body, err);
      ok.disabled = false;
    }
  });
  root.append(dialog);
  dialog.showModal();
  cancel.focus();
}
