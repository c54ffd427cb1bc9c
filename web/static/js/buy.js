// Buy screen (placeholder): the webaccount part replaces this module.
export function mount(root) {
  const h = document.createElement("h1");
  h.textContent = "Buy credits";
  const p = document.createElement("p");
  p.className = "muted";
  p.textContent = "Credit packs and plans will appear here.";
  root.append(h, p);
}
