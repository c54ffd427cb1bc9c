// The editor (being built): prompt or source image with mask, estimate,
// submit, live progress and results.
import { h } from "./dom.js";

export function mount(root) {
  root.append(h("h1", {}, "Editor"), h("p", { class: "muted" }, "The editor is on its way."));
}
