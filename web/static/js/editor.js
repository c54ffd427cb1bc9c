// The editor: a prompt (or a source image, an instruction and a mask
// painted over the image), size and count with the cost shown before
// submitting, then the generation followed live: status, queue position,
// progress, previews, the activity log and the results.

import { h, field, busy } from "./dom.js";
import { newIdempotencyKey, ApiError } from "./api.js";

const GEN_FIELDS = `id kind status queuePosition progress lastSeq count outputCount errorCode errorMessage cost work { id }`;
const GENERATE = `mutation Generate($input: GenerateImageInput!) { generateImage(input: $input) { generation { ${GEN_FIELDS} } } }`;
const EDIT = `mutation Edit($input: EditImageInput!) { editImage(input: $input) { generation { ${GEN_FIELDS} } } }`;
const ESTIMATE_GEN = `query EstimateGeneration($input: GenerateImageInput!) { estimateGeneration(input: $input) { creditsPerImage totalCredits width height } }`;
const ESTIMATE_EDIT = `query EstimateEdit($input: EditImageInput!) { estimateEdit(input: $input) { creditsPerImage totalCredits width height } }`;
const UPLOAD = `mutation Upload($input: UploadImageInput!) { uploadImage(input: $input) { work { id title images { role width height url } } } }`;
const CANCEL = `mutation Cancel($input: CancelGenerationInput!) { cancelGeneration(input: $input) { generation { id status } } }`;
const GENERATION = `query Generation($id: ID!) { generation(id: $id) { ${GEN_FIELDS} } }`;
const OUTPUTS = `query Outputs($id: ID!) { generation(id: $id) { status work { id title images { id role url } } } }`;
const ACTIVE = `query Active { viewer { generations(first: 1) { edges { node { ${GEN_FIELDS} } } } } }`;
const WORK = `query Work($id: ID!) { work(id: $id) { id title images { role width height url } } }`;
const EVENTS = `subscription GenerationEvents($id: ID!, $afterSeq: Int) {
  generationEvents(id: $id, afterSeq: $afterSeq) {
    seq kind generationId attempt fraction step totalSteps message previewUrl
    outputIndex outputUrl errorCode errorMessage cost createdAt
  }
}`;

const SIZES = [
  ["512x512", "Square, small (512 × 512)"],
  ["1024x1024", "Square (1024 × 1024)"],
  ["1216x832", "Landscape 3:2 (1216 × 832)"],
  ["832x1216", "Portrait 2:3 (832 × 1216)"],
  ["1344x768", "Wide 16:9 (1344 × 768)"],
  ["768x1344", "Tall 9:16 (768 × 1344)"],
];
const FINAL = new Set(["SUCCEEDED", "FAILED", "CANCELED"]);
const STATUS_TEXT = {
  QUEUED: "Waiting for a free worker…",
  RUNNING: "Making your images…",
  SUCCEEDED: "Done.",
  FAILED: "It could not be made.",
  CANCELED: "Canceled.",
};

export function mount(root, ctx) {
  const stops = [];
  let source = null; // {workId, width, height, title}
  let pendingKey = null; // idempotency key of the submission being tried
  let estimateSeq = 0;
  let job = null; // the generation followed now

  // Form.
  const prompt = h("textarea", { id: "prompt", rows: 3, maxlength: 4000, required: true,
    placeholder: "A lighthouse on a cliff at dawn, watercolor" });
  const promptLabel = h("span", {}, "Prompt");
  const sourceFile = h("input", { id: "source-file", type: "file", accept: "image/png,image/jpeg,image/webp" });
  const sourceStatus = h("p", { id: "source-status", class: "muted small", role: "status" });
  const sourceImg = h("img", { alt: "The image to edit" });
  const maskCanvas = h("canvas", { id: "mask-canvas", "aria-label": "Mask: paint over the parts of the image to change" });
  const sourcePreview = h("div", { id: "source-preview", hidden: true }, sourceImg, maskCanvas);
  const brush = h("input", { id: "brush-size", type: "range", min: 4, max: 120, value: 40 });
  const maskClear = h("button", { id: "mask-clear", type: "button" }, "Clear the mask");
  const sourceRemove = h("button", { id: "source-remove", type: "button" }, "Remove the image");
  const maskTools = h("div", { class: "row", hidden: true },
    h("label", { class: "check" }, h("span", {}, "Brush"), brush), maskClear, sourceRemove);
  const size = h("select", { id: "size" }, SIZES.map(([v, label]) => h("option", { value: v }, label)));
  size.value = "1024x1024";
  const sizeField = field("Size", size);
  const count = h("input", { id: "count", type: "number", min: 1, max: 4, value: 1, required: true, inputmode: "numeric" });
  const cost = h("span", { id: "cost", "aria-live": "polite" }, "…");
  const submit = h("button", { id: "generate-submit", type: "submit", class: "primary" }, "Generate");
  const form = h("form", { id: "generate-form" },
    h("label", {}, promptLabel, prompt),
    h("div", {},
      field("Start from an image (optional)", sourceFile, "PNG, JPEG or WebP. Paint over it to choose what changes; without a mask the whole image changes."),
      sourceStatus,
      sourcePreview,
      maskTools),
    h("div", { class: "fields" }, sizeField, field("Images", count)),
    h("p", { class: "muted" }, "Cost: ", cost),
    h("div", { class: "row" }, submit));

  // Progress panel.
  const statusEl = h("p", { id: "generation-status", role: "status", "aria-live": "polite" });
  const queueEl = h("p", { id: "queue-position", hidden: true, "aria-live": "polite" });
  const progress = h("progress", { id: "progress", max: 100, value: 0, "aria-label": "Progress" });
  const previews = h("div", { id: "previews", "aria-label": "Previews" });
  const cancel = h("button", { id: "cancel", type: "button", class: "danger" }, "Cancel");
  const results = h("div", { id: "results", "aria-label": "Results" });
  const events = h("ol", { id: "events", "aria-label": "Activity" });
  const jobPanel = h("section", { id: "job", class: "panel", hidden: true, "aria-labelledby": "job-title" },
    h("h2", { id: "job-title" }, "Your images"),
    statusEl, queueEl, progress,
    h("div", { class: "row" }, cancel),
    previews, results,
    h("details", { open: true }, h("summary", {}, "Activity"), events));

  root.append(h("h1", {}, "Create"), h("div", { class: "grid2" }, h("div", { class: "panel" }, form), jobPanel));

  // Size and count change the cost; so does the source.
  const mask = maskPainter(maskCanvas, brush);
  const inputsChanged = () => { pendingKey = null; };
  prompt.addEventListener("input", inputsChanged);
  for (const el of [size, count]) {
    el.addEventListener("input", () => { inputsChanged(); estimate(); });
  }
  maskCanvas.addEventListener("pointerup", inputsChanged);
  maskClear.addEventListener("click", () => { mask.clear(); inputsChanged(); });
  sourceRemove.addEventListener("click", () => { setSource(null); sourceFile.value = ""; });

  async function estimate() {
    const seq = ++estimateSeq;
    const n = Number(count.value);
    if (!Number.isInteger(n) || n < 1 || n > 4) {
      cost.textContent = "Ask for 1 to 4 images.";
      delete cost.dataset.cost;
      return;
    }
    try {
      let credits;
      if (source) {
        const d = await ctx.gql(ESTIMATE_EDIT, { input: { sourceWorkId: source.workId, instruction: prompt.value, count: n } });
        credits = d.estimateEdit.totalCredits;
      } else {
        const [w, hgt] = size.value.split("x").map(Number);
        const d = await ctx.gql(ESTIMATE_GEN, { input: { prompt: prompt.value, width: w, height: hgt, count: n } });
        credits = d.estimateGeneration.totalCredits;
      }
      if (seq !== estimateSeq) return;
      cost.dataset.cost = String(credits);
      const c = ctx.credits();
      cost.textContent = `${credits} credit${credits === 1 ? "" : "s"}` + (c ? ` (you have ${c.available} available)` : "");
    } catch (err) {
      if (seq !== estimateSeq) return;
      delete cost.dataset.cost;
      cost.textContent = err.message;
    }
  }
  stops.push(ctx.onCredits(() => estimate()));

  // A source image is uploaded as soon as it is picked: an edit and its
  // estimate need its work id.
  sourceFile.addEventListener("change", () => {
    const file = sourceFile.files && sourceFile.files[0];
    if (!file) return;
    busy(form, async () => {
      ctx.clearError(form);
      sourceStatus.textContent = "Uploading the image…";
      try {
        const d = await ctx.gqlUpload(UPLOAD, { input: { file: null, title: file.name.slice(0, 200) } }, { "input.file": file });
        setSource(d.uploadImage.work);
        sourceStatus.textContent = "Paint over the parts to change, then describe the change.";
      } catch (err) {
        sourceStatus.textContent = "";
        sourceFile.value = "";
        ctx.showError(form, err);
      }
    });
  });

  function setSource(w) {
    inputsChanged();
    if (!w) {
      source = null;
      sourcePreview.hidden = true;
      maskTools.hidden = true;
      sourceImg.removeAttribute("src");
      sourceStatus.textContent = "";
      promptLabel.textContent = "Prompt";
      prompt.placeholder = "A lighthouse on a cliff at dawn, watercolor";
      sizeField.hidden = false;
      submit.textContent = "Generate";
      estimate();
      return;
    }
    const img = (w.images || []).find((i) => i.role === "OUTPUT") || (w.images || []).find((i) => i.role === "SOURCE");
    if (!img) {
      ctx.showError(form, new ApiError("VALIDATION", "That work has no image to edit yet."));
      return;
    }
    source = { workId: w.id, width: img.width, height: img.height, title: w.title };
    sourceImg.src = img.url;
    mask.reset(img.width, img.height);
    sourcePreview.hidden = false;
    maskTools.hidden = false;
    promptLabel.textContent = "What to change";
    prompt.placeholder = "Make the sky stormy";
    sizeField.hidden = true; // an edit keeps the source's size
    submit.textContent = "Edit the image";
    estimate();
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(form, async () => {
      ctx.clearError(form);
      const n = Number(count.value);
      pendingKey = pendingKey || newIdempotencyKey();
      try {
        let gen;
        if (source) {
          const input = { sourceWorkId: source.workId, instruction: prompt.value, count: n, idempotencyKey: pendingKey };
          if (!mask.isEmpty()) {
            const blob = await mask.toBlob();
            const file = new File([blob], "mask.png", { type: "image/png" });
            const d = await ctx.gqlUpload(UPLOAD, { input: { file: null, title: `Mask for ${source.title || "an edit"}`.slice(0, 200) } }, { "input.file": file });
            input.maskWorkId = d.uploadImage.work.id;
          }
          gen = (await ctx.gql(EDIT, { input })).editImage.generation;
        } else {
          const [w, hgt] = size.value.split("x").map(Number);
          gen = (await ctx.gql(GENERATE, { input: { prompt: prompt.value, width: w, height: hgt, count: n, idempotencyKey: pendingKey } })).generateImage.generation;
        }
        pendingKey = null;
        follow(gen);
      } catch (err) {
        ctx.showError(form, err);
      }
    });
  });

  // follow shows gen and follows its events from the first, so the log is
  // complete even when the page opened in the middle of it.
  function follow(gen) {
    if (job) job.stop();
    job = followGeneration(gen);
  }

  function followGeneration(gen) {
    const state = { stopped: false, status: gen.status, outputs: new Map() };
    jobPanel.hidden = false;
    ctx.clearError(jobPanel);
    events.replaceChildren();
    previews.replaceChildren();
    results.replaceChildren();
    progress.value = Math.round((gen.progress || 0) * 100);
    setStatus(gen.status, gen.queuePosition);
    cancel.hidden = FINAL.has(gen.status);
    cancel.disabled = false;
    cancel.onclick = async () => {
      cancel.disabled = true;
      try {
        await ctx.gql(CANCEL, { input: { generationId: gen.id } });
      } catch (err) {
        ctx.showError(jobPanel, err);
        cancel.disabled = false;
      }
    };

    let pollTimer = 0;
    // Events do not carry the queue position: ask for it while queued.
    const pollQueue = async () => {
      pollTimer = 0;
      if (state.stopped || state.status !== "QUEUED") return;
      try {
        const d = await ctx.gql(GENERATION, { id: gen.id });
        if (!state.stopped && state.status === "QUEUED" && d.generation.status === "QUEUED") setStatus("QUEUED", d.generation.queuePosition);
      } catch { /* the next poll or the events tell */ }
      if (!state.stopped && state.status === "QUEUED") pollTimer = setTimeout(pollQueue, 2000);
    };
    if (gen.status === "QUEUED") pollTimer = setTimeout(pollQueue, 1500);

    function setStatus(status, queuePosition) {
      state.status = status;
      statusEl.dataset.status = status;
      statusEl.textContent = STATUS_TEXT[status] || status;
      const queued = status === "QUEUED" && queuePosition != null;
      queueEl.hidden = !queued;
      if (queued) {
        queueEl.textContent = queuePosition === 1 ? "You are next in the queue." : `Position in the queue: ${queuePosition}.`;
        queueEl.dataset.position = String(queuePosition);
      }
      if (FINAL.has(status)) {
        cancel.hidden = true;
        previews.replaceChildren(); // previews are deleted once it ends
      }
    }

    function onEvent(ev) {
      events.append(h("li", { dataset: { seq: String(ev.seq), kind: ev.kind } },
        h("time", { datetime: ev.createdAt }, new Date(ev.createdAt).toLocaleTimeString()), " ", describe(ev)));
      events.scrollTop = events.scrollHeight;
      switch (ev.kind) {
        case "QUEUED":
          if (state.status === "QUEUED") setStatus("QUEUED", queueEl.hidden ? gen.queuePosition : Number(queueEl.dataset.position));
          break;
        case "STARTED":
          setStatus("RUNNING");
          break;
        case "PROGRESS":
          if (state.status !== "RUNNING") setStatus("RUNNING");
          if (ev.fraction != null) progress.value = Math.max(progress.value, Math.round(ev.fraction * 100));
          if (ev.previewUrl) showPreview(ev);
          break;
        case "OUTPUT":
          if (state.status !== "RUNNING") setStatus("RUNNING");
          if (ev.outputUrl) addResult(ev.outputIndex ?? state.outputs.size, ev.outputUrl);
          break;
        case "SUCCEEDED":
          progress.value = 100;
          setStatus("SUCCEEDED");
          fillResults();
          break;
        case "FAILED":
          setStatus("FAILED");
          ctx.showError(jobPanel, new ApiError(ev.errorCode || "FAILED", ev.errorMessage || "The generation failed; your credits were released."));
          break;
        case "CANCELED":
          setStatus("CANCELED");
          break;
      }
    }

    function showPreview(ev) {
      let img = previews.querySelector("img");
      if (!img) {
        img = h("img", { alt: "" });
        previews.append(img);
      }
      img.alt = `Preview, step ${ev.step ?? ""} of ${ev.totalSteps ?? ""}`;
      img.src = ev.previewUrl;
    }

    function addResult(index, url) {
      if (state.outputs.has(index)) return;
      const img = h("img", { class: "result", src: url, alt: `Result ${index + 1}`, dataset: { index: String(index) } });
      const fig = h("figure", { dataset: { index: String(index) } }, img,
        h("figcaption", {}, h("a", { class: "download", href: url, download: `fastimage-${gen.id.slice(-8)}-${index + 1}` }, `Download image ${index + 1}`)));
      state.outputs.set(index, fig);
      const after = [...results.children].find((f) => Number(f.dataset.index) > index);
      results.insertBefore(fig, after || null);
    }

    // fillResults adds any result whose OUTPUT event this page did not get
    // a URL for, from the work.
    async function fillResults() {
      try {
        const d = await ctx.gql(OUTPUTS, { id: gen.id });
        const outs = d.generation.work.images.filter((i) => i.role === "OUTPUT");
        outs.forEach((img, i) => addResult(i, img.url));
      } catch (err) {
        ctx.showError(jobPanel, err);
      }
    }

    const unsubscribe = ctx.live.followSeq(EVENTS, "generationEvents", { id: gen.id }, null, {
      onEvent,
      error: (err) => ctx.showError(jobPanel, err),
    });
    return {
      id: gen.id,
      stop() {
        state.stopped = true;
        clearTimeout(pollTimer);
        unsubscribe();
      },
    };
  }

  // On arrival: an edit asked for from My Works, and the latest generation
  // if it is still going.
  (async () => {
    const params = new URLSearchParams(location.hash.split("?")[1] || "");
    const fromWork = params.get("source");
    if (fromWork) {
      try {
        const d = await ctx.gql(WORK, { id: fromWork });
        setSource(d.work);
      } catch (err) {
        ctx.showError(form, err);
      }
    } else {
      estimate();
    }
    try {
      const d = await ctx.gql(ACTIVE);
      const edge = d.viewer && d.viewer.generations.edges[0];
      if (edge && !FINAL.has(edge.node.status) && !job) follow(edge.node);
    } catch { /* nothing to resume */ }
  })();

  return () => {
    if (job) job.stop();
    for (const stop of stops) stop();
  };
}

function describe(ev) {
  switch (ev.kind) {
    case "QUEUED": return "Queued.";
    case "STARTED": return ev.attempt > 1 ? `Started again (attempt ${ev.attempt}).` : "Started.";
    case "PROGRESS": {
      const pct = ev.fraction != null ? `${Math.round(ev.fraction * 100)} %` : "";
      const step = ev.step != null && ev.totalSteps ? `step ${ev.step} of ${ev.totalSteps}` : "";
      return [ev.message, step, pct].filter(Boolean).join(" · ") || "Progress.";
    }
    case "OUTPUT": return `Image ${(ev.outputIndex ?? 0) + 1} is ready.`;
    case "SUCCEEDED": return ev.cost != null ? `Done; ${ev.cost} credit${ev.cost === 1 ? "" : "s"} charged.` : "Done.";
    case "FAILED": return ev.errorMessage || "Failed; your credits were released.";
    case "CANCELED": return "Canceled; your credits were released.";
    default: return ev.kind;
  }
}

// maskPainter lets the person paint on canvas (pointer, touch or pen) at
// the source image's own resolution; toBlob gives the mask as the API
// wants it: the image's size, opaque where nothing changes, transparent
// where painted.
function maskPainter(canvas, brush) {
  const g = canvas.getContext("2d");
  let painted = false;
  let last = null;

  function point(e) {
    const r = canvas.getBoundingClientRect();
    return { x: (e.clientX - r.left) * (canvas.width / r.width), y: (e.clientY - r.top) * (canvas.height / r.height), scale: canvas.width / r.width };
  }
  function stroke(p) {
    g.strokeStyle = "#ff2d55";
    g.fillStyle = "#ff2d55";
    g.lineCap = "round";
    g.lineJoin = "round";
    g.lineWidth = Number(brush.value) * p.scale;
    g.beginPath();
    if (last) {
      g.moveTo(last.x, last.y);
      g.lineTo(p.x, p.y);
      g.stroke();
    } else {
      g.arc(p.x, p.y, g.lineWidth / 2, 0, Math.PI * 2);
      g.fill();
    }
    last = p;
    painted = true;
  }
  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    last = null;
    stroke(point(e));
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!canvas.hasPointerCapture(e.pointerId)) return;
    stroke(point(e));
  });
  const end = (e) => {
    if (canvas.hasPointerCapture(e.pointerId)) canvas.releasePointerCapture(e.pointerId);
    last = null;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);

  return {
    reset(width, height) {
      canvas.width = width;
      canvas.height = height;
      painted = false;
    },
    clear() {
      g.clearRect(0, 0, canvas.width, canvas.height);
      painted = false;
    },
    isEmpty: () => !painted,
    toBlob() {
      const out = document.createElement("canvas");
      out.width = canvas.width;
      out.height = canvas.height;
      const o = out.getContext("2d");
      o.fillStyle = "#000";
      o.fillRect(0, 0, out.width, out.height);
      o.globalCompositeOperation = "destination-out";
      o.drawImage(canvas, 0, 0);
      return new Promise((resolve, reject) => out.toBlob((b) => (b ? resolve(b) : reject(new Error("The mask could not be made."))), "image/png"));
    },
  };
}
