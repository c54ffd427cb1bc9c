// My Works (being built): the grid, rename, download, delete, bin.
import { h } from "./dom.js";

export function mount(root) {
  root.append(h("h1", {}, "My Works"), h("div", { id: "works-grid" }));
}

export function mountBin(root) {
  root.append(h("h1", {}, "Bin"), h("div", { id: "works-grid" }));
}
