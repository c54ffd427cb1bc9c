// A small helper for building elements without markup strings (so no
// user text is ever parsed as HTML, and no inline style or handler exists).

// h makes an element: h("button", {type: "button", class: "primary",
// onclick: fn, dataset: {id}}, "Label", child…). Attributes that are null,
// undefined or false are left out; true sets an empty attribute.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "class") el.className = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// field wraps a control in its label: field("Email", input).
export function field(label, control, hint) {
  return h("label", {}, h("span", {}, label), control, hint ? h("span", { class: "muted small" }, hint) : null);
}

// busy disables a form's controls while fn runs.
export async function busy(form, fn) {
  const controls = [...form.querySelectorAll("button, input, select, textarea")];
  const was = controls.map((c) => c.disabled);
  controls.forEach((c) => { c.disabled = true; });
  form.setAttribute("aria-busy", "true");
  try {
    return await fn();
  } finally {
    controls.forEach((c, i) => { c.disabled = was[i]; });
    form.removeAttribute("aria-busy");
  }
}
